"""The ingest lane's side of the daemon: which inbox entries to hand over, and what a failed
ingest leaves behind.

A kit whose ingest failed for good (the engine already quarantined what was bad, or the
entry cannot be read at all) is remembered by its snapshot: the periodic rescan skips it
until somebody changes it, instead of failing on the same bytes every few minutes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from daemon.service.notify import log_failure
from daemon.service.stability import Snapshot, take_snapshot

log = logging.getLogger("traum.daemon")


class Ingests:
    """Ingest inbox entries through `ingest` (the engine's), one at a time (the ingest
    lane's handler and failure hook).

    `announce` logs "ingesting NAME" as an ingest starts; it is off where `ingest` only
    queues the entry for a worker and says so itself (`daemon.cluster.dispatch`).
    """

    def __init__(self, ingest: Callable[[Path], object], *, announce: bool = True) -> None:
        self.ingest = ingest
        self.announce = announce
        self.gave_up: dict[Path, Snapshot] = {}  # entry → its snapshot when it failed

    def handle(self, entry: Path) -> None:
        if not os.path.lexists(entry):
            return  # ingested or removed while it waited
        self.gave_up.pop(entry, None)
        if self.announce:
            log.info("ingesting %s", entry.name)
        self.ingest(entry)

    def failed(self, entry: Path, exc: BaseException) -> None:
        log_failure("ingest", entry, exc)
        snapshot = take_snapshot(entry)
        if snapshot is not None:  # still in the inbox: rescans skip it until it changes
            self.gave_up[entry] = snapshot

    def failed_unchanged(self, entry: Path) -> bool:
        """True for an entry whose last ingest failed and that nobody changed since."""
        failed = self.gave_up.get(entry)
        return failed is not None and failed == take_snapshot(entry)

    def forget_gone(self) -> None:
        """Drop what is remembered about entries that left the inbox."""
        for entry in list(self.gave_up):
            if not os.path.lexists(entry):
                self.gave_up.pop(entry, None)
