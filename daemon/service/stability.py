"""Decide when a dropped file or folder tree has finished arriving.

A copy, a download or an unzip tool writes an entry over seconds or minutes; ingesting it
half-written would quarantine a good kit. An entry is *stable* once no watcher event has
touched it and its snapshot - ``(count, total size, newest mtime)`` of the whole tree, or of
the single file - stayed the same for ``settle_seconds``, and it is still a regular file or
a real folder (symlinks are never followed: a link could point anywhere on the machine).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Snapshot = tuple[int, int, int]  # (entries, total bytes, newest mtime in ns)


def take_snapshot(path: Path) -> Snapshot | None:
    """Return the snapshot of a regular file or of a whole folder tree.

    Returns None when `path` is gone or is neither a regular file nor a folder (a symlink,
    a FIFO, a socket): such an entry can never become stable. Folders count their
    sub-folders too, so an emptied or renamed sub-folder changes the snapshot.
    """
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISREG(info.st_mode):
        return (1, info.st_size, info.st_mtime_ns)
    if not stat.S_ISDIR(info.st_mode):
        return None
    count, size, newest = 1, 0, info.st_mtime_ns
    # os.walk ignores entries that vanish mid-walk (onerror=None), which is what a tree
    # still being written needs: the next snapshot sees the change anyway.
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                child = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            count += 1
            size += child.st_size if stat.S_ISREG(child.st_mode) else 0
            newest = max(newest, child.st_mtime_ns)
    return (count, size, newest)


@dataclass
class _Tracked:
    snapshot: Snapshot | None
    changed_at: float  # clock time of the last event or the last snapshot change
    is_file: bool


class StabilityTracker:
    """Paths touched by events or scans, handed out once each after they settled.

    Thread-safe: watcher threads call `touch` and `forget`, a scheduler job calls `due`.

    Parameters
    ----------
    settle_seconds
        How long an entry must stay untouched and unchanged.
    clock
        Monotonic clock in seconds; tests pass a fake one.
    """

    def __init__(self, *, settle_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_seconds = settle_seconds
        self._clock = clock
        self._tracked: dict[Path, _Tracked] = {}
        self._lock = threading.Lock()

    def touch(self, path: Path) -> None:
        """Record an event on `path`; its settle time starts again now.

        The first touch takes a snapshot so that an entry found by a scan (no events)
        must still keep one snapshot for a full settle period before it is due.
        """
        now = self._clock()
        with self._lock:
            entry = self._tracked.get(path)
            if entry is not None:
                entry.changed_at = now
                if entry.is_file:
                    # One lstat: with the snapshot current, the next check sees no change
                    # and does not restart the wait, so a prompt is answered a tick sooner.
                    entry.snapshot = take_snapshot(path)
                return
        self._start(path, now)

    def add(self, path: Path) -> None:
        """Track `path` found by a scan; unlike `touch`, an entry already tracked keeps its
        settle time (a periodic rescan must not postpone entries forever)."""
        with self._lock:
            if path in self._tracked:
                return
        self._start(path, self._clock())

    def forget(self, path: Path) -> None:
        """Stop tracking `path` (it was deleted or moved away before it settled)."""
        with self._lock:
            self._tracked.pop(path, None)

    def _start(self, path: Path, now: float) -> None:
        snapshot = take_snapshot(path)  # outside the lock: walking a big tree takes a while
        with self._lock:
            self._tracked.setdefault(path, _Tracked(snapshot, now, os.path.isfile(path)))

    def pending(self) -> int:
        """Number of entries still waiting to settle."""
        with self._lock:
            return len(self._tracked)

    def due(self, now: float | None = None) -> list[Path]:
        """Return the entries that settled, and stop tracking them (each is returned once).

        Entries that vanished or became something other than a file or folder are dropped.
        """
        now = self._clock() if now is None else now
        settled: list[Path] = []
        with self._lock:
            candidates = list(self._tracked.items())
        for path, entry in candidates:
            snapshot = take_snapshot(path)  # outside the lock: a big tree takes a while
            with self._lock:
                if self._tracked.get(path) is not entry:
                    continue  # forgotten meanwhile
                if snapshot is None:
                    del self._tracked[path]
                elif snapshot != entry.snapshot:
                    entry.snapshot, entry.changed_at = snapshot, now
                elif now - entry.changed_at >= self.settle_seconds:
                    del self._tracked[path]
                    settled.append(path)
        return settled
