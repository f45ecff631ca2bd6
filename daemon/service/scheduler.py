"""The daemon's periodic jobs on an APScheduler 3 `BackgroundScheduler`.

- ``tick``: hand settled entries to the work lanes (every fraction of a second);
- ``rescan``: look at the folders again for anything the watcher missed
  (``daemon.rescan_seconds``, 300 s by default);
- ``heartbeat``: ``WATCHDOG=1`` and ``STATUS=`` to systemd.

Every job runs at most once at a time and a late run is merged with the next one: a tick
that takes long because a huge tree is being copied must not pile up copies of itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timezone

from apscheduler.schedulers.background import BackgroundScheduler

_JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}

# APScheduler logs every job run at INFO; the tick runs several times a second.
logging.getLogger("apscheduler").setLevel(logging.WARNING)


def start_scheduler(*, tick: Callable[[], None], tick_seconds: float,
                    rescan: Callable[[], None], rescan_seconds: float,
                    heartbeat: Callable[[], None], heartbeat_seconds: float
                    ) -> BackgroundScheduler:
    """Start the scheduler with the three jobs; return it running.

    The first rescan runs one interval after start: the daemon scans once itself before
    it reports ready. Job errors are logged by APScheduler and the job runs again.
    """
    # UTC: interval jobs do not care about the wall clock, and looking up the local zone
    # fails in minimal containers without /etc/localtime.
    scheduler = BackgroundScheduler(job_defaults=_JOB_DEFAULTS, timezone=timezone.utc)
    scheduler.add_job(tick, "interval", seconds=tick_seconds, id="tick")
    scheduler.add_job(rescan, "interval", seconds=rescan_seconds, id="rescan")
    scheduler.add_job(heartbeat, "interval", seconds=heartbeat_seconds, id="heartbeat")
    scheduler.start()
    return scheduler


def set_interval(scheduler: BackgroundScheduler, job_id: str, seconds: float) -> None:
    """Change the period of a running job (after a config reload)."""
    scheduler.reschedule_job(job_id, trigger="interval", seconds=seconds)
