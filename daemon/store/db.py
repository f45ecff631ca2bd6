"""Opening the library database: the embedded SQLite stems.db, or a shared PostgreSQL.

`open_store` is the one entry point of the engine: ``[cluster] database_url`` empty opens
``library/stems.db`` (WAL, pragmas), otherwise the PostgreSQL server it names, through
``playhouse.db_url`` and psycopg 3. Either way the same migrations bring the schema forward
and the models are bound to it. psycopg is imported only for a PostgreSQL URL, so the
single-machine path never loads it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from peewee import Database, DatabaseError, InterfaceError, SqliteDatabase

from daemon.config import Config, mask_password
from daemon.errors import ConfigError, StoreError
from daemon.faults import database_fault, server_fault
from daemon.store import schema
from daemon.store.models import database

BUSY_TIMEOUT_MS = 10_000  # the daemon's two lanes and the CLI may write at once
CONNECT_TIMEOUT_S = 10  # an unreachable host fails in seconds, not after the TCP timeout

# WAL lets renders read committed stems while an ingest writes; NORMAL is durable across
# process crashes in WAL mode (only an OS crash can lose the last transaction).
_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": BUSY_TIMEOUT_MS,
    "cache_size": -16_000,  # 16 MB
}
# playhouse.db_url's scheme for peewee's psycopg 3 class, for both spellings libpq accepts.
_SCHEMES = {"postgresql": "psycopg3", "postgres": "psycopg3"}


def open_store(config: Config) -> Database:
    """Open (creating and migrating as needed) the library database of `config` and bind
    the models to it; return it.

    ``config.cluster.database_url`` empty: the SQLite file ``config.paths.database``
    (`open_database`). Otherwise the PostgreSQL server of that URL (`open_server`); no
    SQLite file is written then. Safe to call again; the models use the last one opened.

    Raises
    ------
    ConfigError
        The URL is malformed (no database name, a bad port, an unknown option).
    StorageFault
        The machine is at fault: the library folder or stems.db (see `open_database`), or
        the server cannot be reached; the message names the URL with its password masked.
    StoreError
        Anything else, such as a schema newer than this release.
    """
    url = config.cluster.database_url
    return open_server(url) if url else open_database(config.paths.database)


def open_database(path: Path) -> SqliteDatabase:
    """Open (creating and migrating as needed) the SQLite database at `path` and bind the
    models.

    Safe to call again with the same path; the models always use the last database opened.
    Raises `StorageFault` when the machine is at fault (the library is read-only, full or
    forbidden, stems.db is locked beyond the busy timeout or damaged: the message points to
    ``traum doctor``), else `StoreError`.
    """
    # A deferred transaction that reads and then writes cannot wait for the write lock in
    # WAL: if another connection committed since its read, SQLite refuses the upgrade at once
    # ("database is locked") whatever the busy timeout. IMMEDIATE takes the write lock at
    # BEGIN, where the busy timeout does wait.
    db = SqliteDatabase(str(path), pragmas=_PRAGMAS, check_same_thread=False,
                        lock_type="IMMEDIATE")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db.connect(reuse_if_open=True)
        schema.migrate(db)
    except (DatabaseError, OSError) as exc:
        db.close()  # a half-open connection would keep the damaged or locked file open
        fault = database_fault(exc, path)
        if fault is not None:
            raise fault from exc
        raise StoreError(f"{path}: cannot open the library database: {exc}") from exc
    database.initialize(db)
    return db


def open_server(url: str) -> Database:
    """Open the PostgreSQL database at `url` (``postgresql://user:pw@host:port/name``),
    migrate it and bind the models.

    Raises `ConfigError` for a malformed URL, `StorageFault` when the server cannot be
    reached or refuses the login, else `StoreError`; each message names the URL with its
    password masked.
    """
    db = server_database(url)
    try:
        db.connect(reuse_if_open=True)
        schema.migrate(db)
    except (DatabaseError, InterfaceError) as exc:
        db.close()
        fault = server_fault(exc, where=mask_password(url))
        if fault is not None:
            raise fault from exc
        raise StoreError(f"{mask_password(url)}: cannot open the library database: "
                         f"{_first_line(exc)}") from exc
    database.initialize(db)
    return db


def server_database(url: str) -> Database:
    """The peewee database of `url`, neither connected nor migrated (`open_server` does
    both); `ConfigError` if `url` is malformed."""
    from playhouse import db_url
    from psycopg.conninfo import make_conninfo

    masked = mask_password(url)
    try:
        parts = urlsplit(url)
        scheme = _SCHEMES[parts.scheme]
        translated = urlunsplit((scheme, *parts[1:]))
        options = db_url.parse(translated, unquote_password=True, unquote_user=True)
        if not options.get("database"):
            raise ValueError("no database name after the host (postgresql://host/NAME)")
        options.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
        make_conninfo(**{("dbname" if k == "database" else k): v for k, v in options.items()})
    except KeyError:
        raise ConfigError(f"config.toml: cluster.database_url: {masked} is not a "
                          "postgresql:// URL") from None
    except Exception as exc:  # urllib's ValueError, psycopg's ProgrammingError
        raise ConfigError(f"config.toml: cluster.database_url: {masked} is malformed: "
                          f"{_first_line(exc)}") from exc
    return _server_class()(masked, **options)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@functools.cache
def _server_class() -> type[Database]:
    """peewee's psycopg 3 database, which turns a lost server into a `StorageFault` naming
    its URL (built on first use: importing this module loads no psycopg)."""
    from playhouse.postgres_ext import Psycopg3Database

    class ServerDatabase(Psycopg3Database):
        """After a server restart or a network cut the thread's connection is dead and
        peewee would hand it out forever; it is dropped, so the next use (the daemon's retry
        after the outage) connects afresh."""

        def __init__(self, masked_url: str, **options) -> None:
            super().__init__(**options)
            self.masked_url = masked_url

        def execute_sql(self, sql, params=None, named_cursor=None):
            try:
                return super().execute_sql(sql, params, named_cursor=named_cursor)
            except (DatabaseError, InterfaceError) as exc:
                fault = server_fault(exc, where=self.masked_url)
                if fault is None or not self._lost():
                    raise
                raise fault from exc

        def cursor(self, named_cursor=None):
            # Every statement, BEGIN and COMMIT ask here: outside a transaction a dead
            # connection is replaced; inside one the transaction is lost and must fail.
            if self._lost() and not self._state.transactions:
                self._state.conn.close()
                self._state.reset()
            return super().cursor(named_cursor)

        def rollback(self):
            if not self._lost():  # else the server dropped the transaction with the link
                super().rollback()

        def _lost(self) -> bool:
            conn = self._state.conn
            return conn is not None and (conn.closed or conn.broken)

    return ServerDatabase
