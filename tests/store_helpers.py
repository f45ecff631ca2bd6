"""The store's tests on both databases: a `Backend` is a fresh library database of one kind.

Test modules parametrise over `KINDS` with a fixture of their own::

    @pytest.fixture(params=KINDS)
    def backend(request, tmp_path):
        with fresh_backend(request.param, tmp_path) as made:
            yield made

``postgres`` runs on the server of `pg_helpers` (CI's, or a throwaway one); without
PostgreSQL installed those cases skip with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from peewee import Database, SqliteDatabase

from daemon.store.db import open_database, open_server, server_database

KINDS = ("sqlite", "postgres")


@dataclass
class Backend:
    """One empty library database. `library` is the folder stem paths are relative to."""

    kind: str
    library: Path
    url: str = ""  # the PostgreSQL database's URL; "" for SQLite

    def open(self) -> Database:
        """Open it as the engine does (migrating it) and bind the models."""
        return open_server(self.url) if self.url else open_database(self.library / "stems.db")

    def raw(self) -> Database:
        """A connection to the same database with no migration and no models bound: a
        database as an older release left it."""
        if self.url:
            return server_database(self.url)
        return SqliteDatabase(str(self.library / "stems.db"))


@contextmanager
def fresh_backend(kind: str, tmp_path: Path) -> Iterator[Backend]:
    """A new, empty database of `kind` (``sqlite`` or ``postgres``), dropped afterwards."""
    if kind == "sqlite":
        yield Backend(kind, tmp_path)
        return
    from pg_helpers import fresh_database

    from daemon.store.models import database

    with fresh_database() as url:
        try:
            yield Backend(kind, tmp_path, url)
        finally:
            if database.obj is not None:
                database.obj.close()  # this thread's connection, before the drop
