"""The daemon's descendants, found through ``/proc``: taken along when it must leave at once."""

from __future__ import annotations

import contextlib
import os
import signal


def kill_descendants(pid: int) -> list[int]:
    """SIGKILL every process below `pid`; return their PIDs.

    Used when the daemon must leave without waiting: a worker pool started through
    multiprocessing's forkserver would hang on forever once its parent is gone.
    """
    found = descendants(pid)
    for child in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    return found


def descendants(pid: int) -> list[int]:
    """PIDs of the processes below `pid` (children, grandchildren...), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue  # exited meanwhile
            # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
            parent = int(stat[stat.rindex(b")") + 2:].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found
