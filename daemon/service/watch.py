"""Filesystem events → the stable, relevant entries of inbox/ and outbox/requests/.

The watcher is deliberately dumb: it maps every event to the *top-level entry* it belongs
to (``inbox/KitA/sub/x.wav`` → ``inbox/KitA``; ``requests/NAME.prompt`` → itself), drops
junk, and touches a `StabilityTracker`. Deciding what an entry contains is the ingest's job.
Scans (at start and periodically) find what the watcher missed: folders moved in by tools
that raise no events, overflowed event queues, network shares.
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

from daemon.fsutil import TEMP_SUFFIX
from daemon.ingest.unpack import is_junk as is_ingest_junk
from daemon.service.stability import StabilityTracker

log = logging.getLogger("traum.watch")

PROMPT_SUFFIX = ".prompt"
# Folders archivers and Windows leave at the top level (the ingest's own list covers files).
_JUNK_FOLDERS = frozenset({"__macosx", "$recycle.bin"})
# Browsers, copy tools and our own atomic writes use these names until they rename.
_PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", TEMP_SUFFIX)
# Events from reading a file (the ingest opening a kit) say nothing about it changing.
_READ_ONLY_EVENTS = frozenset({"opened", "closed_no_write"})

Locate = Callable[[Path], "Path | None"]


def is_junk(name: str) -> bool:
    """True for top-level names that never trigger work: whatever the ingest skips as junk
    (dotfiles and ``._*``, OS metadata, documents, images, DAW projects), ``__MACOSX``,
    Office lock files (``~$*``) and partial downloads."""
    lowered = name.lower()
    return (name.startswith("~$") or lowered in _JUNK_FOLDERS
            or lowered.endswith(_PARTIAL_SUFFIXES) or is_ingest_junk(name))


def inbox_entry(inbox: Path, path: Path) -> Path | None:
    """Return the top-level inbox entry `path` belongs to, or None if it is junk or outside."""
    try:
        parts = path.relative_to(inbox).parts
    except ValueError:
        return None
    if not parts or is_junk(parts[0]):
        return None
    return inbox / parts[0]


def request_entry(requests: Path, path: Path) -> Path | None:
    """Return `path` if it is a ``NAME.prompt`` directly in the requests folder, else None.

    The daemon's own outputs (``.wav``, ``.json``, ``.error.txt``, temp files) never match.
    """
    if path.parent != requests or path.suffix != PROMPT_SUFFIX or is_junk(path.name):
        return None
    return path


def needs_render(prompt: Path) -> bool:
    """True unless the prompt was already answered since it was last written.

    Answered means ``NAME.wav`` and ``NAME.json`` both exist and are at least as new as the
    prompt, or ``NAME.error.txt`` is (a failed prompt is retried only after an edit). "At
    least as new" rather than "newer" so coarse-timestamp filesystems (FAT, SMB: 1-2 s)
    do not render the same prompt forever. A prompt that vanished needs nothing.
    """
    try:
        written = prompt.stat().st_mtime_ns
    except OSError:
        return False

    def answered(suffix: str) -> bool:
        try:
            return prompt.with_suffix(suffix).stat().st_mtime_ns >= written
        except OSError:
            return False

    if answered(".error.txt"):
        return False
    return not (answered(".wav") and answered(".json"))


def scan_inbox(inbox: Path) -> list[Path]:
    """Top-level non-junk inbox entries, oldest first (first dropped, first ingested)."""
    return _scan(inbox, lambda path: inbox_entry(inbox, path))


def scan_requests(requests: Path) -> list[Path]:
    """Prompts in the requests folder that still need rendering, oldest first."""
    return [prompt for prompt in _scan(requests, lambda path: request_entry(requests, path))
            if needs_render(prompt)]


def _scan(folder: Path, locate: Locate) -> list[Path]:
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                path = folder / entry.name
                if locate(path) == path:
                    found.append((_mtime(entry), entry.name, path))
    except OSError as exc:
        log.warning("cannot scan %s: %s", folder, exc.strerror or exc)
    return [path for _, _, path in sorted(found)]


def _mtime(entry: os.DirEntry) -> int:
    try:
        return entry.stat(follow_symlinks=False).st_mtime_ns
    except OSError:
        return 0


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
