"""Filesystem events → the stable, relevant entries of inbox/ and outbox/requests/.

The watcher is deliberately dumb: it maps every event to the *top-level entry* it belongs
to (``inbox/KitA/sub/x.wav`` → ``inbox/KitA``; ``requests/NAME.prompt`` → itself), drops
junk, and touches a `StabilityTracker`. Which paths are entries is `daemon.folders`' rule,
shared with the scans (at start and periodically) that find what the watcher missed:
folders moved in by tools that raise no events, overflowed event queues, network shares.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from daemon.folders import Locate
from daemon.service.stability import StabilityTracker

log = logging.getLogger("traum.watch")

# Events from reading a file (the ingest opening a kit) say nothing about it changing.
_READ_ONLY_EVENTS = frozenset({"opened", "closed_no_write"})


class EntryHandler(FileSystemEventHandler):
    """Maps watchdog events to tracked entries; never lets an exception reach the observer.

    Parameters
    ----------
    tracker
        Receives `touch` for changed entries and `forget` for deleted or moved-away ones.
    locate
        Maps any event path to its entry, or None for junk and irrelevant paths
        (`inbox_entry` or `request_entry` bound to the watched folder).
    """

    def __init__(self, *, tracker: StabilityTracker, locate: Locate) -> None:
        super().__init__()
        self.tracker = tracker
        self.locate = locate

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self.route(event)
        except Exception:  # an observer thread that dies stops all watching
            log.exception("error while handling %s", event)

    def route(self, event: FileSystemEvent) -> None:
        """Apply one event: a moved file counts as deleted at its source and changed at
        its destination (``x.part`` → ``x.zip`` triggers ``x.zip``)."""
        if event.event_type in _READ_ONLY_EVENTS:
            return
        source = Path(os.fsdecode(event.src_path))
        if event.event_type in ("deleted", "moved"):
            self._vanished(source)
        else:
            self._changed(source)
        if event.event_type == "moved":
            self._changed(Path(os.fsdecode(event.dest_path)))

    def _changed(self, path: Path) -> None:
        entry = self.locate(path)
        if entry is not None:
            self.tracker.touch(entry)

    def _vanished(self, path: Path) -> None:
        entry = self.locate(path)
        if entry == path:
            self.tracker.forget(entry)
        elif entry is not None:
            self.tracker.touch(entry)  # something inside a folder kit went away


def start_observer(watches: Sequence[tuple[Path, FileSystemEventHandler]], *, polling: bool,
                   poll_seconds: float = 1.0,
                   native: Callable[[], BaseObserver] = Observer) -> BaseObserver:
    """Start one observer over every ``(folder, handler)`` pair; return it running.

    Uses inotify unless `polling` is set (network shares raise no inotify events); if the
    native observer cannot start (no inotify, watch or instance limit reached) it logs the
    reason and falls back to polling every `poll_seconds`. The folders must exist.
    """
    if not polling:
        observer = native()
        try:
            return _schedule_and_start(observer, watches)
        except OSError as exc:
            log.warning("native file watching unavailable (%s); falling back to polling", exc)
            observer.stop()
    observer = PollingObserver(timeout=poll_seconds)
    _schedule_and_start(observer, watches)
    log.info("watching by polling every %.1f s", poll_seconds)
    return observer


def _schedule_and_start(observer: BaseObserver,
                        watches: Sequence[tuple[Path, FileSystemEventHandler]]) -> BaseObserver:
    for folder, handler in watches:
        observer.schedule(handler, str(folder), recursive=True)
    observer.start()
    return observer
