"""Crash-safe file moves for the library: temp name, fsync, rename.

Every file the engine puts into the library or the quarantine arrives under a temporary
name ending in `TEMP_SUFFIX` and is renamed into place, so a reader (or a restart after
SIGKILL) sees either nothing or the whole file. `remove_temp_files` sweeps leftovers.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

TEMP_SUFFIX = ".traum-tmp"
_CHUNK = 1 << 20  # 1 MiB


def hash_file(path: Path) -> str:
    """sha256 hex digest of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_atomic(source: Path, dest: Path) -> None:
    """Copy `source` to `dest` so that `dest` is either absent or complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(dest.name + TEMP_SUFFIX)
    with open(source, "rb") as src, open(temp, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(temp, dest)
    _fsync_dir(dest.parent)


def write_text_atomic(dest: Path, text: str) -> None:
    """Write `text` (UTF-8) to `dest` atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(dest.name + TEMP_SUFFIX)
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, dest)


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
    _fsync_dir(dest.parent)


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


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is flushed.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
