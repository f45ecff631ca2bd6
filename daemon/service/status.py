"""What the daemon reports about its lanes: the ``STATUS=`` line and the status file's
``in_progress`` that `traum status` prints."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from daemon.service.queue import Lane
from daemon.service.stability import StabilityTracker

Lanes = Sequence[tuple[Lane, StabilityTracker]]  # each lane with the tracker feeding it


def status_line(lanes: Lanes) -> str:
    """One line for ``STATUS=`` and the log: what runs, waits, settles, and why a lane is
    paused ("ingest paused: library disk full (12 MB free), 3 queued, 0 settling")."""
    parts = []
    for lane, tracker in lanes:
        running, waiting = lane.depth()
        paused, held = lane.paused(), lane.held()
        state = f"paused: {paused}" if paused else f"{running} running"
        line = f"{lane.name} {state}, {waiting} queued, {tracker.pending()} settling"
        parts.append(line + (f", {len(held)} held" if held else ""))
    return "; ".join(parts)


def progress(lanes: Lanes) -> dict:
    """Per lane: what runs, how much waits, why it is paused, which items it holds and
    why; with this process's pid and the time (a stable JSON interface)."""
    report: dict = {"pid": os.getpid(), "updated_at": time.time()}
    for lane, tracker in lanes:
        running, waiting = lane.depth()
        current = lane.current
        report[lane.name] = {"running": current.name if running and current else None,
                             "queued": waiting, "settling": tracker.pending(),
                             "paused": lane.paused(), "held": lane.held()}
    return report
