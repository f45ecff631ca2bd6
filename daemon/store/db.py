"""Opening the library database: SQLite with WAL, pragmas and forward migrations."""

from __future__ import annotations

from pathlib import Path

from peewee import DatabaseError, SqliteDatabase

from daemon.errors import StoreError
from daemon.faults import database_fault
from daemon.store import schema
from daemon.store.models import database

BUSY_TIMEOUT_MS = 10_000  # the daemon's two lanes and the CLI may write at once

# WAL lets renders read committed stems while an ingest writes; NORMAL is durable across
# process crashes in WAL mode (only an OS crash can lose the last transaction).
_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": BUSY_TIMEOUT_MS,
    "cache_size": -16_000,  # 16 MB
}


def open_database(path: Path) -> SqliteDatabase:
    """Open (creating and migrating as needed) the database at `path` and bind the models.

    Safe to call again with the same path; the models always use the last database opened.
    Raises `StorageFault` when the machine is at fault (the library is read-only, full or
    forbidden, stems.db is locked beyond the busy timeout or damaged: the message points to
    ``traum doctor``), else `StoreError`.
    """
    db = SqliteDatabase(str(path), pragmas=_PRAGMAS, check_same_thread=False)
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
