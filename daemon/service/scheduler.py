"""The daemon's periodic jobs, each on its own thread, timed by the monotonic clock.

The daemon runs (see `daemon.service.daemon`):

- ``tick``: hand settled entries to the work lanes (every fraction of a second);
- ``rescan``: look at the folders again for anything the watcher missed
  (``daemon.rescan_seconds``, 300 s by default);
- ``heartbeat``: ``WATCHDOG=1`` and ``STATUS=`` to systemd;
- ``backup``: the daily copy of stems.db (checked every hour).

Why not APScheduler (used before): its interval triggers take the next run time from the
wall clock (last run + interval, compared with ``datetime.now()``), so when the system clock
jumps back an hour every job waits an hour: nothing reaches the lanes, the watchdog ping
stops and systemd kills the daemon. The monotonic clock never jumps.

A job never runs twice at once (one thread each), and a run that overran its interval is
followed by the next one at once, never by a pile of catch-up runs. A job that raises is
logged and runs again at its next time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("traum.scheduler")


@dataclass
class _Job:
    name: str
    run: Callable[[], None]
    seconds: float
    thread: threading.Thread | None = None


class Scheduler:
    """Interval jobs on daemon threads; `shutdown` stops them all."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}
        self._cond = threading.Condition()
        self._stopping = False

    def add(self, name: str, run: Callable[[], None], *, seconds: float,
            first: float | None = None) -> None:
        """Run `run` every `seconds`, the first time after `first` seconds (default: one
        interval); the job starts at once."""
        job = _Job(name, run, seconds)
        job.thread = threading.Thread(target=self._loop, args=(job, seconds if first is None
                                                               else first),
                                      name=f"traum-{name}", daemon=True)
        self._jobs[name] = job
        job.thread.start()

    def set_interval(self, name: str, seconds: float) -> None:
        """Change the period of a running job (after a config reload); it applies from the
        job's last run."""
        with self._cond:
            self._jobs[name].seconds = seconds
            self._cond.notify_all()

    def shutdown(self, *, wait: bool = True, timeout: float = 5.0) -> None:
        """Stop every job; with `wait`, give running ones up to `timeout` seconds to end."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if wait:
            deadline = time.monotonic() + timeout
            for job in self._jobs.values():
                job.thread.join(max(0.0, deadline - time.monotonic()))

    def alive(self) -> bool:
        return all(job.thread.is_alive() for job in self._jobs.values())

    def _loop(self, job: _Job, first: float) -> None:
        last = time.monotonic() - job.seconds + first  # as if it had run `first` early
        while True:
            with self._cond:
                # Re-read the interval on every wake-up: `set_interval` may have changed it.
                while not self._stopping and time.monotonic() < last + job.seconds:
                    self._cond.wait(last + job.seconds - time.monotonic())
                if self._stopping:
                    return
            last = time.monotonic()
            try:
                job.run()
            except Exception:
                log.exception("%s job failed; it runs again in %.1f s", job.name, job.seconds)


def start_scheduler(*, tick: Callable[[], None], tick_seconds: float,
                    rescan: Callable[[], None], rescan_seconds: float,
                    heartbeat: Callable[[], None], heartbeat_seconds: float,
                    backup: Callable[[], None], backup_seconds: float) -> Scheduler:
    """Start the daemon's four jobs; return the scheduler running them.

    The first rescan runs one interval after start (the daemon scans once itself before it
    reports ready); the first backup check runs at once.
    """
    scheduler = Scheduler()
    scheduler.add("tick", tick, seconds=tick_seconds)
    scheduler.add("rescan", rescan, seconds=rescan_seconds)
    scheduler.add("heartbeat", heartbeat, seconds=heartbeat_seconds)
    scheduler.add("backup", backup, seconds=backup_seconds, first=0.0)
    return scheduler
