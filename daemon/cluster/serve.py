"""The worker's event loop: procrastinate's job worker on the chosen lanes, kept running
across database outages, stopped cleanly by SIGTERM.

procrastinate's worker ends when it loses its server (its job fetch or its heartbeat
fails). `serve` then pauses the lanes, logs why, probes the server with a doubling backoff
and starts the worker again once it answers. A SIGTERM lets the running jobs finish and
exits 0; if they outlast ``daemon.stop_timeout`` the process leaves at once, like the daemon
(their claims expire and another worker resumes them from the journal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import psycopg
from procrastinate import App
from procrastinate.exceptions import ConnectorException

from daemon.cluster.app import CONNECT_TIMEOUT_S
from daemon.config import mask_password
from daemon.faults import server_fault
from daemon.service.notify import notify
from daemon.service.processes import kill_descendants

log = logging.getLogger("traum.worker")

MAX_PAUSE_SECONDS = 60.0  # a server back after an outage is noticed within a minute


async def serve(app: App, *, url: str, options: dict[str, Any], stop_timeout: float,
                backoff_seconds: float, stalled_after: float, check_every: float,
                on_stop: Callable[[], None]) -> int:
    """Run jobs until SIGTERM or SIGINT, then return 0.

    `options` go to `App.run_worker_async`; `on_stop` is called at the signal (a job
    waiting to retry stops waiting). Every `check_every` seconds the jobs of workers
    silent for `stalled_after` seconds (killed mid-job) are queued again. Raises what is not
    a lost server: a bug ends the worker, and its supervisor restarts it.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            return
        log.info("%s received: finishing the running jobs", signal.Signals(signum).name)
        notify("STOPPING=1")
        stopping.set()
        on_stop()
        loop.call_later(stop_timeout, _leave)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    notify(f"READY=1\nSTATUS=working on {', '.join(options['queues'])}")
    while not stopping.is_set():
        reason = await _run_jobs(app, options, stopping, url=url, check_every=check_every,
                                 stalled_after=stalled_after)
        if reason is not None:
            await _pause(url, reason, stopping, delay=backoff_seconds)
    log.info("stopped")
    return 0


async def _run_jobs(app: App, options: dict[str, Any], stopping: asyncio.Event, *, url: str,
                    check_every: float, stalled_after: float) -> str | None:
    """Run procrastinate's worker until a stop request (None) or until it ends by itself:
    return why (a lost server, or that it stopped)."""
    try:
        async with app.open_async():
            jobs = asyncio.create_task(app.run_worker_async(**options), name="traum-jobs")
            stalled = asyncio.create_task(_requeue_stalled(app, every=check_every,
                                                           silent_for=stalled_after))
            stop = asyncio.create_task(stopping.wait())
            try:
                await asyncio.wait({jobs, stop}, return_when=asyncio.FIRST_COMPLETED)
                if not jobs.done():
                    jobs.cancel()  # procrastinate lets the running jobs finish, then stops
                (outcome,) = await asyncio.gather(jobs, return_exceptions=True)
            finally:
                stalled.cancel()
                stop.cancel()
    except Exception as exc:  # opening or closing the pool on a lost server
        outcome = exc
    if stopping.is_set():
        return None
    if isinstance(outcome, Exception):
        fault = server_fault(outcome, where=mask_password(url))
        if fault is None:
            raise outcome
        return str(fault)
    return "the job worker stopped by itself"


async def _pause(url: str, reason: str, stopping: asyncio.Event, *, delay: float) -> None:
    """Wait until the server answers again, or a stop; log the pause and the resume."""
    delay = max(delay, 0.5)
    log.error("lanes paused: %s; next try in %.1f s", reason, delay)
    notify(f"STATUS=paused: {reason}")
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), delay)
        if stopping.is_set():
            return
        problem = await asyncio.to_thread(_probe, url)
        if problem is None:
            log.info("lanes resume: %s answers again", mask_password(url))
            notify("STATUS=working")
            return
        delay = min(delay * 2, MAX_PAUSE_SECONDS)
        log.debug("still paused: %s; next try in %.1f s", problem, delay)


def _probe(url: str) -> str | None:
    """None when the server at `url` answers, else why not."""
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        fault = server_fault(exc, where=mask_password(url))
        return str(fault) if fault is not None else str(exc).strip()
    return None


async def _requeue_stalled(app: App, *, every: float, silent_for: float) -> None:
    """Every `every` seconds, queue again the jobs of workers silent for `silent_for`
    seconds: a worker killed mid-job left them "doing". Their claims have expired by then
    (a claim lasts as long), so the next worker to fetch them takes the work over."""
    manager = app.job_manager
    while True:
        await asyncio.sleep(every)
        try:
            stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=silent_for)
        except ConnectorException:
            continue  # a lost server: the job worker notices and pauses the lanes
        for job in stalled:
            try:
                await manager.retry_job(job)
            except ConnectorException:
                continue  # another worker queued it again first
            log.warning("job %s (%s of %s) queued again: its worker went silent", job.id,
                        job.task_name, job.task_kwargs.get("item"))


def _leave() -> None:
    """The stop timeout is up with jobs still running: leave now. The journal keeps what
    they committed; their claims expire and another worker (or this one, restarted)
    finishes them."""
    log.warning("stop timeout reached with jobs running; they resume elsewhere once their "
                "claims expire")
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    kill_descendants(os.getpid())  # the analysis pool would outlive us
    os._exit(0)
