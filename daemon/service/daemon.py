"""`traum run`: the long-running service that wires watching, lanes, scheduler and signals.

Life of the process::

    load config → reconcile the ingest journal → watch inbox/ and requests/ → scan both
    → READY=1 → (settled entries → ingest lane / render lane) ... SIGTERM → STOPPING=1
    → let the running items finish until daemon.stop_timeout → exit 0

SIGHUP reloads config and rules; a bad new config is logged and the old one kept. Work is
done by a `Work` object (daemon/work.py); this module only decides *when* and catches what
each item raises: a failed render leaves ``NAME.error.txt``, a failed ingest is logged (the
ingest has already quarantined bad input).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import sys
import time
from pathlib import Path
from typing import Protocol

from daemon.config import Config, ensure_folders, load_config
from daemon.errors import (
    AnalysisError,
    ConfigError,
    IngestError,
    PlanError,
    RuleError,
    TraumError,
)
from daemon.fsutil import write_text_atomic
from daemon.service import scheduler as jobs
from daemon.service.notify import configure_logging, notify, watchdog_interval
from daemon.service.queue import Lane, LanePolicy
from daemon.service.stability import Snapshot, StabilityTracker, take_snapshot
from daemon.service.watch import (
    EntryHandler,
    inbox_entry,
    needs_render,
    request_entry,
    scan_inbox,
    scan_requests,
    start_observer,
)

log = logging.getLogger("traum.daemon")

# Errors that describe the input itself: retrying the same bytes cannot help.
_FINAL_ERRORS = (PlanError, IngestError, AnalysisError, ConfigError, RuleError)
_STATUS_SECONDS = 5.0  # how often STATUS= is refreshed when no watchdog asks for more
_HEALTH_SECONDS = 5.0  # how often the main thread checks that the worker threads live
_EXIT_MARGIN = 0.5  # of stop_timeout, kept for flushing logs and leaving the interpreter


class Work(Protocol):
    """What the daemon needs from the engine (implemented by `daemon.work.Engine`)."""

    def reconcile(self) -> object: ...
    def ingest(self, path: Path) -> object: ...
    def render(self, prompt: Path) -> object: ...
    def reload(self, config: Config) -> None: ...
    def status(self) -> dict: ...
    def close(self) -> None: ...


def run_daemon(config_path: Path | None, *, work: Work | None = None) -> int:
    """Run in the foreground until SIGTERM or SIGINT; return the exit code.

    `work` defaults to the engine (`daemon.work.Engine`) built from the loaded config;
    tests pass a stand-in. Raises `ConfigError` for a bad config at start and whatever
    `work.reconcile` raises (a `StoreError` when the library cannot be opened): the CLI
    maps them to exit codes.
    Returns 0 after a requested stop, 1 if a worker thread died. If an item is still
    running when ``daemon.stop_timeout`` is up, the process exits 0 at once with
    `os._exit`; the ingest journal resumes the item at the next start.
    """
    config = load_config(config_path)
    configure_logging(config.daemon.log_level)
    if work is None:
        from daemon.work import Engine  # heavy (numpy, librosa): only for the real daemon

        work = Engine(config)
    return Service(config, work=work, config_path=config_path).run()


def status_file(library: Path) -> Path:
    """Where the running daemon publishes its work in progress."""
    return library / "daemon-status.json"


def write_status_file(library: Path, progress: dict) -> None:
    write_text_atomic(status_file(library), json.dumps(progress))


def read_status_file(library: Path, *, max_age: float = 30.0) -> dict:
    """The running daemon's work in progress; {} when no live daemon published it lately."""
    try:
        progress = json.loads(status_file(library).read_text())
        os.kill(int(progress["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return progress if time.time() - float(progress["updated_at"]) <= max_age else {}


def error_path(prompt: Path) -> Path:
    """Where a failed prompt's message goes: ``NAME.error.txt`` next to ``NAME.prompt``."""
    return prompt.with_suffix(".error.txt")


def write_error_file(prompt: Path, message: str) -> None:
    """Write ``NAME.error.txt`` atomically (a temp name the watcher ignores, then rename)."""
    write_text_atomic(error_path(prompt), f"{message}\nEdit {prompt.name} to try again.\n")


class Service:
    """The running daemon: two trackers, two lanes, one observer, one scheduler."""

    def __init__(self, config: Config, *, work: Work, config_path: Path | None) -> None:
        self.config = config
        self.work = work
        self.config_path = config_path
        self.signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        settle = config.ingest.settle_seconds
        self.inbox = StabilityTracker(settle_seconds=settle)
        self.requests = StabilityTracker(settle_seconds=settle)
        policy = _policy(config)
        self.ingest = Lane("ingest", handler=self._ingest, on_failure=self._ingest_failed,
                           policy=policy)
        self.render = Lane("render", handler=self._render, on_failure=self._render_failed,
                           policy=policy)
        self.attempted: dict[Path, int] = {}  # prompt → mtime of the text last rendered
        self.gave_up: dict[Path, Snapshot] = {}  # inbox entry → its snapshot when it failed
        self.observer = None
        self.scheduler = None

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda number, _frame: self.signals.put(number))
        ensure_folders(self.config.paths)
        self.work.reconcile()
        self.observer = self._watch()  # before the scan, so nothing slips in between
        self.rescan()
        self.ingest.start()
        self.render.start()
        self.scheduler = self._schedule()
        notify(f"READY=1\nSTATUS={self.status_line()}")
        write_status_file(self.config.paths.library, self.progress())
        log.info("ready: watching %s and %s (%s)", self.config.paths.inbox,
                 self.config.paths.requests, self.status_line())
        return self._stop(self._serve())

    def status_line(self) -> str:
        """One line for ``STATUS=`` and the log: what runs, waits and settles."""
        parts = []
        for lane, tracker in ((self.ingest, self.inbox), (self.render, self.requests)):
            running, waiting = lane.depth()
            parts.append(f"{lane.name} {running} running, {waiting} queued, "
                         f"{tracker.pending()} settling")
        return "; ".join(parts)

    def rescan(self) -> None:
        """Track every inbox entry and unanswered prompt that is not already being handled."""
        for entry in scan_inbox(self.config.paths.inbox):
            if not (self.ingest.busy_with(entry) or self._failed_unchanged(entry)):
                self.inbox.add(entry)
        for prompt in scan_requests(self.config.paths.requests):
            if not self.render.busy_with(prompt):
                self.requests.add(prompt)

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
        write_status_file(self.config.paths.library, self.progress())

    def progress(self) -> dict:
        """What each lane runs and how much waits (the `in_progress` of `traum status`)."""
        report = {"pid": os.getpid(), "updated_at": time.time()}
        for lane, tracker in ((self.ingest, self.inbox), (self.render, self.requests)):
            running, waiting = lane.depth()
            current = lane.current
            report[lane.name] = {"running": current.name if running and current else None,
                                 "queued": waiting, "settling": tracker.pending()}
        return report

    def healthy(self) -> bool:
        return (self.ingest.alive() and self.render.alive()
                and self.observer is not None and self.observer.is_alive())

    def reload(self) -> None:
        """Apply a new config and rules, or keep the old ones and log why not."""
        try:
            config = load_config(self.config_path)
            ensure_folders(config.paths)
            self.work.reload(config)
        except (TraumError, OSError) as exc:
            log.error("reload rejected, keeping the running configuration: %s", exc)
            return
        old, self.config = self.config, config
        configure_logging(config.daemon.log_level)
        for tracker in (self.inbox, self.requests):
            tracker.settle_seconds = config.ingest.settle_seconds
        self.ingest.policy = self.render.policy = _policy(config)
        jobs.set_interval(self.scheduler, "rescan", config.daemon.rescan_seconds)
        jobs.set_interval(self.scheduler, "tick", _tick_seconds(config))
        if (old.paths, old.daemon.polling) != (config.paths, config.daemon.polling):
            self.observer.stop()
            self.observer.join(timeout=5.0)
            self.observer = self._watch()
            self.rescan()
        log.info("configuration reloaded from %s", config.source or "built-in defaults")

    def _watch(self):
        paths = self.config.paths
        watches = [
            (paths.inbox, EntryHandler(tracker=self.inbox,
                                       locate=lambda p: inbox_entry(paths.inbox, p))),
            (paths.requests, EntryHandler(tracker=self.requests,
                                          locate=lambda p: request_entry(paths.requests, p))),
        ]
        return start_observer(watches, polling=self.config.daemon.polling)

    def _schedule(self):
        interval = watchdog_interval()
        return jobs.start_scheduler(
            tick=self.tick, tick_seconds=_tick_seconds(self.config),
            rescan=self.rescan, rescan_seconds=self.config.daemon.rescan_seconds,
            heartbeat=self.heartbeat,
            heartbeat_seconds=min(interval or _STATUS_SECONDS, _STATUS_SECONDS))

    def _serve(self) -> int:
        """Block on signals until asked to stop; return the exit code."""
        while True:
            try:
                signum = self.signals.get(timeout=_HEALTH_SECONDS)
            except queue.Empty:
                if not self.healthy():
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
        self.observer.stop()
        self.scheduler.shutdown(wait=True)
        for lane in (self.ingest, self.render):
            lane.stop()
        busy = [f"{lane.name} of {lane.current}" for lane in (self.ingest, self.render)
                if not lane.join(max(0.0, deadline - time.monotonic()))]
        if busy:
            log.warning("stop timeout reached during %s; it resumes at the next start",
                        ", ".join(busy))
            _flush_logs()
            # Pool workers would outlive us, blocked on their task queue: take them along.
            kill_descendants(os.getpid())
            os._exit(code)  # the running item's thread cannot be interrupted: leave now
        self.observer.join(timeout=1.0)
        self.work.close()
        status_file(self.config.paths.library).unlink(missing_ok=True)
        log.info("stopped")
        return code

    def _ingest(self, entry: Path) -> None:
        if not os.path.lexists(entry):
            return  # ingested or removed while it waited
        self.gave_up.pop(entry, None)
        log.info("ingesting %s", entry.name)
        self.work.ingest(entry)

    def _ingest_failed(self, entry: Path, exc: BaseException) -> None:
        _log_failure("ingest", entry, exc)
        snapshot = take_snapshot(entry)
        if snapshot is not None:  # still in the inbox: rescans skip it until it changes
            self.gave_up[entry] = snapshot

    def _failed_unchanged(self, entry: Path) -> bool:
        """True for an entry whose last ingest failed and that nobody changed since: a
        rescan every few minutes must not retry the same broken input forever."""
        failed = self.gave_up.get(entry)
        return failed is not None and failed == take_snapshot(entry)

    def _render(self, prompt: Path) -> None:
        try:
            written = prompt.stat().st_mtime_ns
        except OSError:
            return  # deleted while it waited
        # Outputs written while the prompt was being edited look newer than the edit:
        # remembering which text was attempted catches that case.
        edited = self.attempted.get(prompt, written) != written
        if not (needs_render(prompt) or edited):
            return
        self.attempted[prompt] = written
        log.info("rendering %s", prompt.name)
        self.work.render(prompt)
        error_path(prompt).unlink(missing_ok=True)  # an older failure no longer applies

    def _render_failed(self, prompt: Path, exc: BaseException) -> None:
        _log_failure("render", prompt, exc)
        message = str(exc) if isinstance(exc, TraumError) else (
            f"internal error: {type(exc).__name__}: {exc}")
        try:
            write_error_file(prompt, message)
        except OSError as write_exc:
            log.error("cannot write %s: %s", error_path(prompt), write_exc)


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


def _policy(config: Config) -> LanePolicy:
    return LanePolicy(retries=config.daemon.retries,
                      backoff_seconds=config.daemon.retry_backoff_seconds,
                      retryable=lambda exc: not isinstance(exc, _FINAL_ERRORS))


def _tick_seconds(config: Config) -> float:
    # A quarter of the settle time hands an entry over at most 25 % late; 0.1-0.5 s keeps
    # the tick cheap on a busy machine yet quick for prompts.
    return min(0.5, max(0.1, config.ingest.settle_seconds / 4))


def _log_failure(verb: str, path: Path, exc: BaseException) -> None:
    if isinstance(exc, TraumError):
        log.error("%s failed for %s: %s", verb, path, exc)
    else:
        log.error("%s failed for %s", verb, path, exc_info=exc)


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
