"""`traum run`: the long-running service that wires watching, lanes, scheduler and signals.

Life of the process::

    load config → watch inbox/ and requests/ → scan both → open the library (reconcile the
    ingest journal) → READY=1 → (settled entries → ingest lane / render lane) ... SIGTERM
    → STOPPING=1 → let the running items finish until daemon.stop_timeout → exit 0

SIGHUP reloads config and rules; a bad new config is logged and the old one kept. Work is
done by a `Work` object (daemon/work.py); this module only decides *when* and catches what
each item raises: a failed render leaves ``NAME.error.txt``, a failed ingest is logged (the
ingest has already quarantined bad input). A fault of the machine (`StorageFault`: a full
disk, a locked database...) pauses the lane it hit, or holds the one item, and is retried
with backoff until it clears; ``STATUS=`` and `traum status` say why. When the library
cannot be opened at all, the daemon still starts, paused, and keeps trying.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from daemon.config import Config, ensure_folders, load_config
from daemon.errors import (
    AnalysisError,
    ConfigError,
    IngestError,
    PlanError,
    RuleError,
    StorageFault,
    StoreError,
    TraumError,
)
from daemon.faults import translate_faults
from daemon.folders import (
    inbox_entry,
    request_entry,
    scan_inbox,
    scan_requests,
    status_file,
    write_status_file,
)
from daemon.service import scheduler as jobs
from daemon.service.ingests import Ingests
from daemon.service.memory import tune_allocator
from daemon.service.notify import configure_logging, notify, watchdog_interval
from daemon.service.processes import kill_descendants
from daemon.service.queue import Hold, Lane, LanePolicy
from daemon.service.renders import Renders
from daemon.service.stability import StabilityTracker
from daemon.service.status import progress, status_line
from daemon.service.watch import EntryHandler, start_observer
from daemon.store.backup import take_daily_backup

log = logging.getLogger("traum.daemon")

# Errors that describe the input itself: retrying the same bytes cannot help.
_FINAL_ERRORS = (PlanError, IngestError, AnalysisError, ConfigError, RuleError)
_STATUS_SECONDS = 5.0  # how often STATUS= is refreshed when no watchdog asks for more
_HEALTH_SECONDS = 5.0  # how often the main thread checks that the worker threads live
_EXIT_MARGIN = 0.5  # of stop_timeout, kept for flushing logs and leaving the interpreter
_MAX_BACKOFF_SECONDS = 60.0  # a fault cleared by hand is noticed within a minute
_BACKUP_CHECK_SECONDS = 3600.0  # the daily backup is taken by the first check of a UTC day


class Work(Protocol):
    """What the daemon needs from the engine (implemented by `daemon.work.Engine`)."""

    def reconcile(self) -> object: ...
    def reanalyse(self, *, stopping: Callable[[], bool]) -> object: ...
    def ingest(self, path: Path) -> object: ...
    def render(self, prompt: Path) -> object: ...
    def reload(self, config: Config) -> None: ...
    def status(self) -> dict: ...
    def close(self) -> None: ...


def run_daemon(config_path: Path | None, *, work: Work | None = None,
               open_work: Callable[[Config], Work] | None = None, debug: bool = False) -> int:
    """Run in the foreground until SIGTERM or SIGINT; return the exit code.

    `work` defaults to what `open_work` builds from the loaded config, by default the engine
    (`daemon.work.Engine`): the dispatch choice between doing the work in-process and
    queueing it for cluster workers is that function's (`daemon.commands.service`); tests
    pass a stand-in `work`. Raises `ConfigError` for a bad config at start. A library that
    cannot be opened (a `StorageFault`) does not stop the start: the lanes stay paused and
    opening is retried. `debug` logs tracebacks. Returns 0 after a requested stop, 1 if a
    worker thread died. If an item is still running when ``daemon.stop_timeout`` is up, the
    process exits 0 at once with `os._exit`; the ingest journal resumes the item at the
    next start.
    """
    config = load_config(config_path)
    configure_logging(config.daemon.log_level, debug=debug)
    tune_allocator()  # before the first big buffer: see daemon.service.memory
    build = open_work or _engine
    return Service(config, open_work=build if work is None else lambda _config: work,
                   config_path=config_path, debug=debug).run()


def _engine(config: Config) -> Work:
    from daemon.work import Engine  # heavy (numpy, librosa): only for the real daemon

    return Engine(config)


class Service:
    """The running daemon: two trackers, two lanes, one observer, one scheduler."""

    def __init__(self, config: Config, *, open_work: Callable[[Config], Work],
                 config_path: Path | None, debug: bool = False) -> None:
        self.config = config
        self.debug = debug
        self.open_work = open_work
        self.work: Work | None = None
        self.config_path = config_path
        self.signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        settle = config.ingest.settle_seconds
        self.inbox = StabilityTracker(settle_seconds=settle)
        self.requests = StabilityTracker(settle_seconds=settle)
        policy = lane_policy(config)
        # A cluster's watcher only queues a prompt, and its dispatcher says so.
        self.renders = Renders(lambda prompt: self.work.render(prompt),
                               announce=not config.cluster.enabled)
        self.ingests = Ingests(lambda entry: self.work.ingest(entry),
                               announce=not config.cluster.enabled)
        self.ingest = Lane("ingest", handler=self.ingests.handle,
                           on_failure=self.ingests.failed, policy=policy)
        self.render = Lane("render", handler=self.renders.handle,
                           on_failure=self.renders.failed, policy=policy)
        self.lanes = ((self.ingest, self.inbox), (self.render, self.requests))
        self.opened = False  # the library is open and reconciled
        self.open_tries = 0
        self.open_retry_at = 0.0  # monotonic time of the next try to open the library
        self.status_failed = False  # the last status file write failed (logged once)
        self.observer = None
        self.scheduler = None
        self.reanalysis: threading.Thread | None = None  # started once the library is open
        self.stopping = threading.Event()  # set at stop: the re-analysis ends early

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda number, _frame: self.signals.put(number))
        for folder in (self.config.paths.inbox, self.config.paths.requests):
            folder.mkdir(parents=True, exist_ok=True)  # watched from the start
        self.observer = self._watch()  # before the scan, so nothing slips in between
        self.rescan()
        self.ingest.start()
        self.render.start()
        self.open_library()
        self.scheduler = self._schedule()
        notify(f"READY=1\nSTATUS={self.status_line()}")
        self.publish()
        log.info("ready: watching %s and %s (%s)", self.config.paths.inbox,
                 self.config.paths.requests, self.status_line())
        return self._stop(self._serve())

    def open_library(self) -> bool:
        """Create the folders, build the work and reconcile the library; True when done.

        On a `StorageFault` both lanes pause with its reason and the next try is set a
        doubling backoff later (`_serve` makes it). Other errors propagate: a bad config or
        rules folder, or a bug, ends the start.
        """
        try:
            with translate_faults(self.config.paths, writes=("library",)):
                ensure_folders(self.config.paths)
                if self.work is None:
                    self.work = self.open_work(self.config)
                self.work.reconcile()
        except StorageFault as fault:
            delay = min(self.config.daemon.retry_backoff_seconds * 2 ** self.open_tries,
                        _MAX_BACKOFF_SECONDS)
            if self.open_tries == 0 or self.ingest.paused() != fault.what:
                log.error("cannot open the library, work paused: %s; next try in %.1f s",
                          fault, delay, exc_info=fault)
            self.open_tries += 1
            self.open_retry_at = time.monotonic() + delay
            for lane in (self.ingest, self.render):
                lane.pause(fault.what)
            return False
        if self.open_tries:
            log.info("library open again: work resumes")
        self.opened, self.open_tries = True, 0
        for lane in (self.ingest, self.render):
            lane.resume()
        if self.reanalysis is None:  # stems analysed by older code: brought up to date
            self.reanalysis = threading.Thread(target=self._reanalyse, daemon=True,
                                               name="traum-reanalyse")
            self.reanalysis.start()
        return True

    def _reanalyse(self) -> None:
        """Re-analyse what an upgrade or a killed run left, beside the lanes; a stop or an
        error ends it, and the next start resumes it."""
        try:
            report = self.work.reanalyse(stopping=self.stopping.is_set)
        except Exception:  # the thread's boundary: the lanes carry on regardless
            log.exception("re-analysis stopped; it resumes at the next start")
            return
        log.info("re-analysis: %s", report)

    def status_line(self) -> str:
        """One line for ``STATUS=`` and the log (`daemon.service.status.status_line`)."""
        return status_line(self.lanes)

    def rescan(self) -> None:
        """Track every inbox entry and unanswered prompt that is not already being handled;
        forget what was remembered about entries that are gone."""
        entries = scan_inbox(self.config.paths.inbox)
        prompts = scan_requests(self.config.paths.requests)
        for entry in entries:
            if not (self.ingest.busy_with(entry) or self.ingests.failed_unchanged(entry)):
                self.inbox.add(entry)
        for prompt in prompts:
            if not self.render.busy_with(prompt):
                self.requests.add(prompt)
        log.debug("rescan: %d inbox entries, %d prompts to render", len(entries), len(prompts))
        self.renders.forget_gone()
        self.ingests.forget_gone()

    def tick(self) -> None:
        """Hand settled entries to their lanes."""
        for path in self.inbox.due():
            self.ingest.submit(path)
        for path in self.requests.due():
            self.render.submit(path)

    def heartbeat(self) -> None:
        """STATUS= always; WATCHDOG=1 only while every worker thread is alive; the work in
        progress also goes to a status file for `traum status`."""
        message = f"STATUS={self.status_line()}"
        if watchdog_interval() is not None and self.healthy():
            message = f"WATCHDOG=1\n{message}"
        notify(message)
        self.publish()

    def publish(self) -> None:
        """Write the status file; a failure (a read-only library) is logged once."""
        try:
            write_status_file(self.config.paths.library, progress(self.lanes))
        except OSError as exc:
            if not self.status_failed:
                log.warning("cannot write the status file for traum status: %s",
                            exc.strerror or exc)
            self.status_failed = True
        else:
            self.status_failed = False

    def healthy(self) -> bool:
        return (self.ingest.alive() and self.render.alive()
                and self.observer is not None and self.observer.is_alive()
                and (self.scheduler is None or self.scheduler.alive()))

    def reload(self) -> None:
        """Apply a new config and rules, or keep the old ones and log why not."""
        try:
            config = load_config(self.config_path)
            ensure_folders(config.paths)
            if self.work is not None:
                self.work.reload(config)
        except (TraumError, OSError) as exc:
            log.error("reload rejected, keeping the running configuration: %s", exc)
            return
        old, self.config = self.config, config
        configure_logging(config.daemon.log_level, debug=self.debug)
        for tracker in (self.inbox, self.requests):
            tracker.settle_seconds = config.ingest.settle_seconds
        self.ingest.policy = self.render.policy = lane_policy(config)
        self.scheduler.set_interval("rescan", config.daemon.rescan_seconds)
        self.scheduler.set_interval("tick", _tick_seconds(config))
        if (old.paths, old.daemon.polling) != (config.paths, config.daemon.polling):
            self.observer.stop()
            self.observer.join(timeout=5.0)
            self.observer = self._watch()
            self.rescan()
        log.info("configuration reloaded from %s", config.source or "built-in defaults")

    def backup(self) -> None:
        """The daily copy of stems.db (``daemon.backups`` kept); a failure is logged and
        the next check tries again."""
        library = self.config.paths.library
        if not (self.opened and self.config.paths.database.is_file()):
            return  # nothing to copy yet, or the library is not usable
        try:
            made = take_daily_backup(library, keep=self.config.daemon.backups)
        except (StoreError, OSError) as exc:
            log.error("daily backup not taken: %s", exc)
            return
        if made is not None:
            log.info("daily backup: %s", made)

    def _watch(self):
        paths = self.config.paths
        watches = [
            (paths.inbox, EntryHandler(tracker=self.inbox,
                                       locate=lambda p: inbox_entry(paths.inbox, p))),
            (paths.requests, EntryHandler(tracker=self.requests,
                                          locate=lambda p: request_entry(paths.requests, p))),
        ]
        return start_observer(watches, polling=self.config.daemon.polling)

    def _schedule(self) -> jobs.Scheduler:
        interval = watchdog_interval()
        return jobs.start_scheduler(
            tick=self.tick, tick_seconds=_tick_seconds(self.config),
            rescan=self.rescan, rescan_seconds=self.config.daemon.rescan_seconds,
            heartbeat=self.heartbeat,
            heartbeat_seconds=min(interval or _STATUS_SECONDS, _STATUS_SECONDS),
            backup=self.backup, backup_seconds=_BACKUP_CHECK_SECONDS)

    def _serve(self) -> int:
        """Block on signals until asked to stop; retry opening the library while it is
        not open; return the exit code."""
        while True:
            wait = _HEALTH_SECONDS if self.opened else min(
                _HEALTH_SECONDS, max(0.0, self.open_retry_at - time.monotonic()))
            try:
                signum = self.signals.get(timeout=wait)
            except queue.Empty:
                if not self.opened and time.monotonic() >= self.open_retry_at:
                    self.open_library()
                elif not self.healthy():
                    log.critical("a worker thread died; exiting so the supervisor restarts us")
                    return 1
                continue
            if signum != signal.SIGHUP:
                log.info("%s received: finishing the current work", signal.Signals(signum).name)
                return 0
            self.reload()

    def _stop(self, code: int) -> int:
        deadline = time.monotonic() + self.config.daemon.stop_timeout - _EXIT_MARGIN
        notify("STOPPING=1")
        self.stopping.set()
        self.observer.stop()
        self.scheduler.shutdown(wait=True, timeout=max(0.0, deadline - time.monotonic()))
        for lane in (self.ingest, self.render):
            lane.stop()
        busy = [f"{lane.name} of {lane.current}" for lane in (self.ingest, self.render)
                if not lane.join(max(0.0, deadline - time.monotonic()))]
        if self.reanalysis is not None:  # it stops after its current stem and logs where
            self.reanalysis.join(max(0.0, deadline - time.monotonic()))
            if self.reanalysis.is_alive():
                busy.append("the re-analysis")
        if busy:
            log.warning("stop timeout reached during %s; it resumes at the next start",
                        ", ".join(busy))
            _flush_logs()
            # Pool workers would outlive us, blocked on their task queue: take them along.
            kill_descendants(os.getpid())
            os._exit(code)  # the running item's thread cannot be interrupted: leave now
        self.observer.join(timeout=1.0)
        if self.work is not None:
            self.work.close()
        with contextlib.suppress(OSError):  # read-only: a stale status file expires by age
            status_file(self.config.paths.library).unlink(missing_ok=True)
        log.info("stopped")
        return code


def lane_policy(config: Config) -> LanePolicy:
    """How a lane (or a cluster worker's task) retries: faults of the machine are held,
    bad input fails at once, anything else is retried ``daemon.retries`` times."""
    return LanePolicy(retries=config.daemon.retries,
                      backoff_seconds=config.daemon.retry_backoff_seconds,
                      retryable=lambda exc: not isinstance(exc, _FINAL_ERRORS),
                      hold=_hold, max_backoff_seconds=_MAX_BACKOFF_SECONDS)


def _hold(exc: BaseException) -> Hold | None:
    return Hold(exc.scope, exc.what) if isinstance(exc, StorageFault) else None


def _tick_seconds(config: Config) -> float:
    # A quarter of the settle time hands an entry over at most 25 % late; 0.1-0.5 s keeps
    # the tick cheap on a busy machine yet quick for prompts.
    return min(0.5, max(0.1, config.ingest.settle_seconds / 4))


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
