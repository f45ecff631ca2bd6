"""Crash-safe file writes: a temp name in the target folder, fsync, rename, fsync the folder.

Every file the engine writes (library stems, quarantine reasons, renders and their exports,
cache entries, the classifier, unit files, status files) arrives under a temporary name ending
in `TEMP_SUFFIX` and is renamed into place, so a reader, a watcher or a restart after SIGKILL
sees either nothing or the whole file. `remove_temp_files` sweeps leftovers.

Outputs follow the umask: a temp file from `mkstemp` is 0600, and a rename keeps the mode, so
`atomic_output` sets ``0666 & ~umask`` before the rename (what ``open()`` would have given).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

TEMP_SUFFIX = ".traum-tmp"
_CHUNK = 1 << 20  # 1 MiB


def current_umask() -> int:
    """The process umask (read by setting and restoring it; not thread-safe against another
    thread changing the umask at the same moment, which nothing in the engine does)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_mode() -> int:
    """The mode a plain ``open(path, "w")`` would create: ``0666 & ~umask``."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_output(dest: Path) -> Iterator[Path]:
    """Yield a temp path beside `dest`; on a clean exit it becomes `dest` atomically.

    The caller writes the whole file to the yielded path (any library that takes a path).
    On success it is fsynced, given ``0666 & ~umask``, renamed over `dest` and the folder is
    fsynced. On an exception the temp file is removed and `dest` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.",
                                    suffix=TEMP_SUFFIX)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        _fsync_file(temp)
        os.chmod(temp, output_mode())
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    """Write `data` to `dest` atomically."""
    with atomic_output(dest) as temp:
        temp.write_bytes(data)


def write_text_atomic(dest: Path, text: str) -> None:
    """Write `text` (UTF-8) to `dest` atomically."""
    write_bytes_atomic(dest, text.encode("utf-8"))


def write_with(dest: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temp_path)`` and move the result to `dest` atomically."""
    with atomic_output(dest) as temp:
        write(temp)


def copy_atomic(source: Path, dest: Path) -> None:
    """Copy `source` to `dest` so that `dest` is either absent or complete."""
    with atomic_output(dest) as temp, open(source, "rb") as src, open(temp, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def move_atomic(source: Path, dest: Path) -> None:
    """Move `source` to `dest`: a rename on one filesystem, else copy-then-delete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, dest)
    except OSError:
        if source.is_dir():
            shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(source)
        else:
            copy_atomic(source, dest)
            source.unlink()
    fsync_dir(dest.parent)


def hash_file(path: Path) -> str:
    """sha256 hex digest of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def remove_entry(path: Path) -> None:
    """Delete a file or a whole folder tree (never following symlinks); absent is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=False)


def remove_temp_files(root: Path) -> int:
    """Delete every leftover temp file under `root`; return how many."""
    count = 0
    if root.is_dir():
        for temp in root.rglob(f"*{TEMP_SUFFIX}"):
            temp.unlink(missing_ok=True)
            count += 1
    return count


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries: a rename is durable only once its directory is synced."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
