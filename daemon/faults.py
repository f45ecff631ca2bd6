"""Faults of the machine, recognised in an exception: `storage_fault` and `translate_faults`.

A full disk, a read-only or forbidden folder, a locked or damaged stems.db and a stored file
deleted by hand reach the engine as an `OSError` or a `sqlite3` error, often wrapped (peewee
re-raises sqlite3 errors as its own, an output writer wraps an `OSError` in a `RenderError`).
`storage_fault` finds that root error and builds a `StorageFault` naming the folder as the
user knows it (inbox, library, cache, outbox), the cause and what to do; it returns None for
everything else (bad input, bugs), which keeps its usual handling.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import shlex
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

from daemon.config import Paths, mask_password
from daemon.errors import (
    AnalysisError,
    ConfigError,
    EmbeddingError,
    IngestError,
    PlanError,
    RuleError,
    StorageFault,
)

MB = 2**20
# Errors about the input itself: an OSError behind them (a kit file that vanished while it
# was probed) has already been settled as the input's problem.
_INPUT_ERRORS = (IngestError, AnalysisError, PlanError, ConfigError, RuleError, EmbeddingError)
_RETRIES = "then try again (the daemon retries by itself)"
# SQLite primary result codes (sqlite3.h).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
# Python < 3.11 has no `sqlite_errorcode`: its messages are SQLite's own (sqlite3_errstr).
_CODES_BY_MESSAGE = {"database is locked": _BUSY, "database table is locked": _LOCKED,
                     "attempt to write a readonly database": _READONLY,
                     "disk I/O error": _IOERR, "database disk image is malformed": _CORRUPT,
                     "database or disk is full": _FULL,
                     "unable to open database file": _CANTOPEN,
                     "file is not a database": _NOTADB}


@contextlib.contextmanager
def translate_faults(paths: Paths, *, writes: tuple[str, ...]) -> Iterator[None]:
    """Re-raise a machine fault from the body as a `StorageFault` (chained from the
    original); any other exception passes unchanged.

    `writes` names the folders the body writes to ("library", "cache", "outbox"): a full
    disk reported without a file name (a ``write()`` on an open file) is looked for there.
    """
    try:
        yield
    except Exception as exc:
        fault = storage_fault(exc, paths, writes=writes)
        if fault is None or fault is exc:
            raise
        raise fault from exc


def storage_fault(exc: BaseException, paths: Paths, *,
                  writes: tuple[str, ...] = ("library",)) -> StorageFault | None:
    """The `StorageFault` that `exc` stands for, or None when the machine is not at fault."""
    if isinstance(exc, StorageFault):
        return exc
    if isinstance(exc, _INPUT_ERRORS):
        return None
    for root in _chain(exc):
        fault = (_database_fault(root, paths.database) if isinstance(root, sqlite3.Error)
                 else _file_fault(root, paths, writes))
        if fault is not None:
            return fault
    return server_fault(exc)


def database_fault(exc: BaseException, database: Path) -> StorageFault | None:
    """`storage_fault` for opening the database file `database` (its folder is the library)."""
    for root in _chain(exc):
        if isinstance(root, sqlite3.Error):
            fault = _database_fault(root, database)
        elif root.errno in (errno.ENOSPC, errno.EDQUOT):
            fault = _disk_full_at("library", database.parent, quota=root.errno == errno.EDQUOT)
        elif root.errno == errno.EROFS:
            fault = _read_only_at("library", database.parent)
        elif root.errno in (errno.EACCES, errno.EPERM):
            fault = _unwritable("library", database.parent)
        else:
            fault = None
        if fault is not None:
            return fault
    return None


def cache_fault_line(exc: OSError, folder: Path) -> str:
    """One line for a cache file of `folder` that could not be written: the cause and what
    to do. The render goes on without the cache entry, so this is a warning, not a fault."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fault = _disk_full_at("cache", folder, quota=exc.errno == errno.EDQUOT)
    elif exc.errno == errno.EROFS:
        fault = _read_only_at("cache", folder)
    elif exc.errno in (errno.EACCES, errno.EPERM):
        fault = _unwritable("cache", folder)
    else:
        return f"cache not written at {folder}: {exc.strerror or exc}; renders go on, slower"
    return f"{fault.what} at {folder}: renders go on, slower; {fault.advice}"


def server_fault(exc: BaseException, *, where: str = "") -> StorageFault | None:
    """The `StorageFault` of a PostgreSQL server that cannot be reached (down, a network
    cut, a restart, the login refused, its disk full), found along the causes of `exc`;
    None for anything else. The fault names the server's URL with the password masked:
    `where`, else the one a failed connection reports.

    psycopg is looked up, never imported: without a ``[cluster]`` it is not loaded, and
    then no error can be one of its own.
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return None
    current: BaseException | None = exc
    for _ in range(12):
        if current is None:
            return None
        if isinstance(current, psycopg.OperationalError) and _lost_server(current):
            return _server_fault(current, where)
        current = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)
    return None


@contextlib.contextmanager
def server_faults(url: str) -> Iterator[None]:
    """Re-raise a lost PostgreSQL server from the body as the `StorageFault` of
    `server_fault`, naming `url` with its password masked; anything else passes unchanged."""
    try:
        yield
    except Exception as exc:
        fault = server_fault(exc, where=mask_password(url))
        if fault is None:
            raise
        raise fault from exc


def _lost_server(error: BaseException) -> bool:
    """A failed connection (no SQLSTATE: libpq's own), a connection exception (class 08),
    the server shutting down or starting (57P0x) or out of resources (class 53). Not a
    deadlock, a timeout or a serialization failure: those are about the statement."""
    state = getattr(error, "sqlstate", None)
    return state is None or state.startswith(("08", "57P", "53"))


def _server_fault(error: BaseException, where: str) -> StorageFault:
    reason = (str(error).strip().splitlines() or ["connection lost"])[0]
    reason = reason.removeprefix("connection failed: ")
    return StorageFault(f"library database unreachable ({reason})",
                        where=where or _server_url(error), cause="unreachable",
                        advice="start the server or fix [cluster] database_url in config.toml, "
                        f"{_RETRIES}")


def _server_url(error: BaseException) -> str:
    """The URL a failed connection attempt was made to, its password masked."""
    conn = getattr(error, "pgconn", None)
    if conn is None or not conn.host:  # a connection closed since no longer says where
        return "postgresql://(the [cluster] database_url)"
    user = (conn.user or b"").decode()
    login = f"{user}:***@" if conn.password else f"{user}@" if user else ""
    return f"postgresql://{login}{conn.host.decode()}:{conn.port.decode()}/{conn.db.decode()}"


def _chain(exc: BaseException) -> Iterator[OSError | sqlite3.Error]:
    """The `OSError`s and `sqlite3.Error`s along the causes of `exc`, outermost first:
    ``raise ... from``, else the error being handled when it was raised. Peewee re-raises
    sqlite3's that way, and a COMMIT that failed on a full disk surfaces as the failed
    ROLLBACK after it: the fault may lie a few links down."""
    current: BaseException | None = exc
    for _ in range(12):  # wrappers nest a few deep; a loop must not spin forever
        if current is None:
            return
        if isinstance(current, (OSError, sqlite3.Error)):
            yield current
        current = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)


def _file_fault(error: OSError, paths: Paths, writes: tuple[str, ...]) -> StorageFault | None:
    path = Path(os.fsdecode(error.filename)) if isinstance(error.filename, (str, bytes)) else None
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return _disk_full(paths, path=path, writes=writes, quota=error.errno == errno.EDQUOT)
    if error.errno == errno.EROFS:
        return _read_only(paths, path=path, writes=writes)
    if error.errno in (errno.EACCES, errno.EPERM):
        return _forbidden(paths, path=path, writes=writes)
    if error.errno == errno.ENOENT and path is not None and _inside(path, paths.stems):
        relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(paths.library))
        return StorageFault(f"stored stem {relative} deleted by hand", where=path,
                            advice="run traum doctor --fix so the library forgets it, or put "
                            "the file back", cause="missing", scope="item")
    if error.errno == errno.EIO:
        label, folder = _locate(path, paths) or _named(paths, writes[0])
        return StorageFault(f"{label} I/O error", where=folder, cause="io",
                            advice=f"the disk may be failing: check dmesg, {_RETRIES}")
    return None


def _disk_full(paths: Paths, *, path: Path | None, writes: tuple[str, ...],
              quota: bool = False) -> StorageFault:
    """No space (or quota) left where `path` lies, else on the fullest of `writes`."""
    label, folder = _locate(path, paths) or min(
        (_named(paths, name) for name in writes), key=lambda item: free_bytes(item[1]))
    return _disk_full_at(label, folder, quota=quota)


def _disk_full_at(label: str, folder: Path, *, quota: bool = False) -> StorageFault:
    hint = " or lower render.cache_max_mb" if label == "cache" else ""
    cause = "over quota" if quota else "disk full"
    return StorageFault(f"{label} {cause} ({free_bytes(folder) // MB} MB free)", where=folder,
                        advice=f"free space on that disk{hint}, {_RETRIES}", cause="disk-full")


def _read_only(paths: Paths, *, path: Path | None, writes: tuple[str, ...]) -> StorageFault:
    located = _locate(path, paths)
    if located is None:
        candidates = [_named(paths, name) for name in writes]
        located = next((item for item in candidates if _is_read_only(item[1])), candidates[0])
    return _read_only_at(*located)


def _read_only_at(label: str, folder: Path) -> StorageFault:
    mount = shlex.quote(str(mount_point(folder)))
    return StorageFault(f"{label} read-only", where=folder, cause="read-only",
                        advice=f"mount it read-write (mount -o remount,rw {mount}), {_RETRIES}")


def _forbidden(paths: Paths, *, path: Path | None, writes: tuple[str, ...]) -> StorageFault:
    if path is not None and _inside(path, paths.inbox):
        relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(paths.inbox))
        entry = shlex.quote(str(paths.inbox / relative.parts[0]))
        return StorageFault(f"inbox permission denied on {relative}", where=path,
                            cause="permission", scope="item",
                            advice=f"let {_user()} read the kit (chmod -R a+rX {entry}); the "
                            "daemon retries it by itself, the other kits go on")
    return _unwritable(*(_locate(path, paths) or _named(paths, writes[0])))


def _unwritable(label: str, folder: Path) -> StorageFault:
    return StorageFault(f"{label} permission denied", where=folder, cause="permission",
                        advice=f"give {_user()} write access to {folder} and what is in it, "
                        f"{_RETRIES}")


def _database_fault(error: sqlite3.Error, database: Path) -> StorageFault | None:
    code = _sqlite_code(error)
    library = database.parent
    if code == _FULL or (code == _IOERR and free_bytes(library) < MB):
        return _disk_full_at("library", library)
    if code in (_BUSY, _LOCKED):
        holders = database_holders(database)
        held = f" ({', '.join(holders)})" if holders else ""
        return StorageFault(f"stems.db locked by another process{held}", where=database,
                            cause="locked", advice="another program is writing to it: let "
                            f"that program finish or stop it, {_RETRIES}")
    if code in (_READONLY, _CANTOPEN):
        if _is_read_only(library):
            return _read_only_at("library", library)
        return StorageFault(f"stems.db cannot be {'written' if code == _READONLY else 'opened'}",
                            where=database, cause="permission",
                            advice=f"give {_user()} write access to {library}, stems.db "
                            f"and its -wal and -shm files, {_RETRIES}")
    if code in (_CORRUPT, _NOTADB):
        return StorageFault(f"stems.db damaged ({error})", where=database, cause="damaged",
                            advice="stop the daemon, run traum doctor to check it and traum "
                            "doctor --restore to put back the newest backup")
    if code == _IOERR:
        return StorageFault("stems.db I/O error", where=database, cause="io",
                            advice=f"the disk may be failing: check dmesg, {_RETRIES}")
    return None


def _sqlite_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return _CODES_BY_MESSAGE.get(str(error))
    return code & 0xFF  # extended codes (SQLITE_IOERR_WRITE...) keep the primary in the low byte


def database_holders(database: Path, *, limit: int = 3) -> list[str]:
    """"pid N (name)" of other processes that have `database` open, from ``/proc``; [] where
    /proc hides them (``ProtectProc=invisible``, another user's processes)."""
    targets = {os.path.abspath(database), os.path.abspath(f"{database}-wal")}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                if os.readlink(fd.path) in targets:
                    name = Path(f"/proc/{entry.name}/comm").read_text().strip()
                    found.append(f"pid {entry.name} {name}")
                    break
        if len(found) == limit:
            break
    return found


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer can still use on the disk of `folder` (0 if unknown)."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return 0
    return info.f_bavail * info.f_frsize


def mount_point(folder: Path) -> Path:
    """The mount point of the filesystem holding `folder`."""
    current = Path(os.path.abspath(folder))
    try:
        device = current.stat().st_dev
        while current.parent != current and current.parent.stat().st_dev == device:
            current = current.parent
    except OSError:
        pass  # unreadable above: the deepest folder known is the best answer
    return current


def _is_read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _named(paths: Paths, name: str) -> tuple[str, Path]:
    return name, {"inbox": paths.inbox, "library": paths.library, "cache": paths.cache,
                  "outbox": paths.requests}[name]


def _locate(path: Path | None, paths: Paths) -> tuple[str, Path] | None:
    """The innermost named folder holding `path` (cache before library)."""
    if path is None:
        return None
    for name in ("cache", "library", "outbox", "inbox"):
        label, folder = _named(paths, name)
        if _inside(path, folder):
            return label, folder
    return None


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a dynamic or namespaced uid without a passwd entry
        return f"uid {os.geteuid()}"
