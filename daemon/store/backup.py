"""Backups of the library database: online copies, the daily rotation, and restore.

A backup is taken with SQLite's online backup API (`sqlite3.Connection.backup`) while the
daemon keeps working: it is one consistent snapshot of every committed transaction, WAL
included. Each copy is written under a temporary name, checked with ``PRAGMA quick_check``
and switched to rollback-journal mode (a single self-contained file) before it is renamed
into place, so a backup on disk is always complete and sound. A damaged database is never
backed up: it would push the last good copies out of the rotation.

Rotated backups live in ``library/backups/stems-YYYYmmdd-HHMMSS.db`` (UTC, so the names
sort in time order across daylight-saving changes); only the newest ``daemon.backups`` are
kept. A restore keeps the file it replaces as ``stems.db.damaged-YYYYmmdd-HHMMSS`` (its WAL
beside it), never deletes it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from daemon.config import ClusterSettings, mask_password
from daemon.errors import StoreError
from daemon.fsutil import atomic_output, fsync_dir

BACKUP_FOLDER = "backups"
_STAMP = "%Y%m%d-%H%M%S"
_NAME = re.compile(r"stems-(\d{8}-\d{6})\.db")
_SIDE_FILES = ("-wal", "-shm")  # SQLite's companions of a WAL-mode database
_MAX_PROBLEMS = 20  # integrity_check stops after this many findings: enough to judge
LOCK_WAIT = 10.0  # seconds a connection waits for a lock, the daemon's busy_timeout


@dataclass(frozen=True)
class Restored:
    """What `restore_backup` did: which backup it used, where the replaced file went."""

    backup: Path
    kept: Path | None  # None when there was no database file to replace


def require_sqlite(cluster: ClusterSettings, command: str) -> None:
    """Raise `StoreError` when the library lives on a PostgreSQL server (``[cluster]``):
    `command` (``backup``, ``doctor``) works on stems.db, and a server is backed up and
    checked with its own tools."""
    if cluster.database_url:
        raise StoreError(f"{mask_password(cluster.database_url)}: the library is on "
                         f"PostgreSQL, and traum {command} works on stems.db only: back the "
                         "server up with pg_dump (pg_dump -Fc -f traum.dump URL), restore with "
                         "pg_restore, check it with amcheck")


def backup_folder(library: Path) -> Path:
    """Where the rotated backups of `library`'s database live."""
    return library / BACKUP_FOLDER


def backup_name(now: datetime | None = None) -> str:
    """The rotation's file name for a backup taken at `now` (default: this moment, UTC)."""
    return f"stems-{(now or datetime.now(timezone.utc)).strftime(_STAMP)}.db"


def database_problems(path: Path, *, quick: bool = False) -> list[str]:
    """Check the SQLite file at `path`; return its problems, [] when it is sound.

    ``quick`` runs ``PRAGMA quick_check`` (pages and records, O(N)); otherwise
    ``PRAGMA integrity_check`` (also every index) and ``PRAGMA foreign_key_check``. A file
    that is missing or not a database at all is one problem. Never writes.
    Raises `StoreError` when the file cannot be checked (locked beyond the busy timeout,
    no permission, an I/O error): that says nothing about its health.
    """
    if not path.is_file():
        return [f"{path}: no such file"]
    try:
        with sqlite_connection(path) as db:
            pragma = "quick_check" if quick else "integrity_check"
            found = [row[0] for row in db.execute(f"PRAGMA {pragma}({_MAX_PROBLEMS})")]
            if found != ["ok"]:
                return _problem_lines(found)
            if quick:
                return []
            return [f"{table} row {rowid} points to a missing {parent} row"
                    for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check")]
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):  # "file is not a database", "database disk image is malformed"
            return [str(exc)]
        raise StoreError(f"{path}: cannot check the library database: {exc}") from exc


def is_damage(exc: sqlite3.DatabaseError) -> bool:
    """Whether `exc` means the file is damaged. Python raises corruption (SQLITE_CORRUPT,
    SQLITE_NOTADB) as DatabaseError, and locks, permissions, a full disk or an I/O error
    as its subclass OperationalError: those leave the file as sound as it was."""
    return not isinstance(exc, sqlite3.OperationalError)


def _problem_lines(rows: list[str]) -> list[str]:
    """One problem per item: SQLite returns a block per database, headed by a line
    "*** in database main ***" and holding one problem per line."""
    lines = (line.strip() for row in rows for line in row.splitlines())
    return [line for line in lines if line and not line.startswith("*** in database")]


def take_backup(database: Path, dest: Path) -> Path:
    """Copy the live `database` to `dest` (atomically, verified) and return `dest`.

    Raises `StoreError` when the database is missing or damaged, or the copy cannot be
    written (a full disk...); `dest` is then left as it was.
    """
    if not database.is_file():
        raise StoreError(f"{database}: no library database to back up")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        match_owner(dest.parent, database.parent)
        with atomic_output(dest) as temp:
            _copy_online(database, temp)
            match_owner(temp, database)
    except sqlite3.DatabaseError as exc:
        if not is_damage(exc):
            raise StoreError(f"cannot back up {database}: {exc}") from exc
        raise StoreError(f"{database}: damaged, not backed up (the existing backups are "
                         f"kept): {exc}; run traum doctor") from exc
    except OSError as exc:
        raise StoreError(f"cannot write the backup {dest}: {exc.strerror or exc}") from exc
    return dest


def _copy_online(database: Path, temp: Path) -> None:
    """Snapshot `database` into the empty file `temp` and make it a sound, single file."""
    with sqlite_connection(database) as source, \
            sqlite_connection(temp, mode="rwc") as copy:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
        problems = _problem_lines([row[0] for row in copy.execute("PRAGMA quick_check")])
    if problems != ["ok"]:
        raise StoreError(f"{database}: damaged, not backed up (the existing backups are "
                         f"kept): {problems[0]}; run traum doctor")


def match_owner(path: Path, reference: Path) -> None:
    """Give `path` the owner and group of `reference` when running as root.

    ``sudo traum backup`` or ``sudo traum doctor`` must not leave root-owned files in a
    library that a service account writes; as any other user this changes nothing.
    """
    if os.geteuid() != 0:
        return
    info = reference.stat()
    os.chown(path, info.st_uid, info.st_gid, follow_symlinks=False)


def take_library_backup(library: Path, *, keep: int, now: datetime | None = None) -> Path:
    """Back up ``library/stems.db`` into the rotation, prune it to `keep`; return the copy."""
    dest = backup_folder(library) / backup_name(now)
    take_backup(library / "stems.db", dest)
    prune_backups(library, keep=keep)
    return dest


def take_daily_backup(library: Path, *, keep: int, now: datetime | None = None) -> Path | None:
    """The daemon's daily job: back up unless the rotation already has a copy from today
    (UTC); prune to `keep`. Returns the new backup, or None when today's existed.

    Safe to call at every start and then periodically. Raises `StoreError` like
    `take_backup` (a damaged database is reported, never rotated in).
    """
    moment = now or datetime.now(timezone.utc)
    newest = list_backups(library)[:1]
    if newest and newest[0].name.startswith(f"stems-{moment.strftime('%Y%m%d')}-"):
        return None
    return take_library_backup(library, keep=keep, now=moment)


def list_backups(library: Path) -> list[Path]:
    """The rotated backups of `library`, newest first (files the rotation did not name,
    such as a ``traum backup PATH`` copy put there by hand, are left out)."""
    folder = backup_folder(library)
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if _NAME.fullmatch(path.name)]
    return sorted(found, key=lambda path: path.name, reverse=True)


def prune_backups(library: Path, *, keep: int) -> list[Path]:
    """Delete all but the newest `keep` rotated backups; return the deleted ones."""
    removed = list_backups(library)[keep:]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def restore_backup(database: Path, *, library: Path, backup: Path | None = None,
                   now: datetime | None = None) -> Restored:
    """Replace `database` with `backup`, or with the newest sound rotated backup.

    The chosen backup must pass ``PRAGMA integrity_check``. The file it replaces (if any)
    is kept beside it as ``stems.db.damaged-STAMP`` with its WAL. The new file appears
    atomically; if anything fails before, the database is left as it was.
    Raises `StoreError` when there is no sound backup (or the given one is damaged).
    The caller makes sure no daemon has the database open.
    """
    chosen = _sound_backup(library, backup)
    stamp = (now or datetime.now(timezone.utc)).strftime(_STAMP)
    kept = None
    try:
        with atomic_output(database) as temp:
            shutil.copyfile(chosen, temp)
            match_owner(temp, database if database.exists() else database.parent)
            kept = _set_aside(database, f"{database.name}.damaged-{stamp}")
    except OSError as exc:
        raise StoreError(f"cannot restore {database} from {chosen}: "
                         f"{exc.strerror or exc}") from exc
    return Restored(backup=chosen, kept=kept)


def _sound_backup(library: Path, backup: Path | None) -> Path:
    if backup is not None:
        problems = database_problems(backup)
        if problems:
            raise StoreError(f"{backup}: not a sound backup: {problems[0]}")
        return backup
    candidates = list_backups(library)
    for candidate in candidates:
        if not database_problems(candidate):
            return candidate
    where = backup_folder(library)
    if candidates:
        raise StoreError(f"every backup in {where} is damaged; nothing to restore")
    raise StoreError(f"no backup in {where}; nothing to restore")


def _set_aside(database: Path, name: str) -> Path | None:
    """Rename `database` and its WAL companions to `name` (+ suffix); None if absent.

    The WAL must move too: SQLite would replay a stale ``stems.db-wal`` into the restored
    file and corrupt it.
    """
    if not database.exists():
        return None
    kept = database.with_name(name)
    for suffix in _SIDE_FILES:
        side = database.with_name(database.name + suffix)
        if side.exists():
            os.replace(side, kept.with_name(kept.name + suffix))
    os.replace(database, kept)
    fsync_dir(database.parent)
    return kept


@contextlib.contextmanager
def sqlite_connection(path: Path, *, mode: str = "ro") -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to `path`, always closed on exit (sqlite3's own context
    manager only commits), with foreign keys enforced.

    `mode` is SQLite's URI mode: ``ro`` never creates or changes the file, ``rw`` writes
    an existing file, ``rwc`` may create it. Lock waits end after `LOCK_WAIT`.
    """
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=LOCK_WAIT)
    try:
        db.execute("PRAGMA foreign_keys = ON")
        yield db
    finally:
        db.close()
