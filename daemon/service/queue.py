"""Work lanes: one thread per kind of work, so a render never waits behind a big ingest.

A `Lane` runs its items one at a time, in submission order. It ignores a path that is
already waiting; a path submitted while it runs is run once more afterwards (it changed
while being worked on). The handler and the failure hook are the per-item error boundary:
nothing they raise stops the lane. A failure is one of three kinds (the `LanePolicy` says
which):

- a *hold*: the machine is at fault (a full disk, a locked database). Retrying can only
  help once the fault clears, so the item is retried with a doubling backoff, as long as it
  takes; a hold of scope "lane" pauses the whole lane meanwhile (every item would fail the
  same way), one of scope "item" holds that item while the others go on. The first success
  after a pause resumes the lane;
- a *retryable* failure: retried ``retries`` times with a doubling backoff;
- a *final* failure (the input is bad): the failure hook runs at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("traum.queue")

#: Doublings of a held item's backoff that count (2**32 times any backoff passes any cap).
MAX_DOUBLINGS = 32


@dataclass(frozen=True)
class Hold:
    """A failure the machine causes: `scope` "lane" pauses the lane, "item" holds only the
    item; `reason` says why in a few words ("library disk full (12 MB free)")."""

    scope: str
    reason: str


@dataclass(frozen=True)
class LanePolicy:
    """How a lane retries.

    Attributes
    ----------
    retries
        Extra attempts after the first failure (``daemon.retries``).
    backoff_seconds
        Wait before the first retry; it doubles for every further one.
    retryable
        Whether an error may go away on its own rather than being a property of the input
        (an empty prompt, a corrupt zip).
    hold
        The `Hold` an error stands for, or None; holds are retried without limit.
    max_backoff_seconds
        The longest wait between two tries of a held item: a fault cleared by hand is
        noticed at most this late.
    """

    retries: int
    backoff_seconds: float
    retryable: Callable[[BaseException], bool] = field(default=lambda exc: True)
    hold: Callable[[BaseException], Hold | None] = field(default=lambda exc: None)
    max_backoff_seconds: float = 60.0


@dataclass(frozen=True)
class _Pause:
    reason: str
    probe: Path | None  # the held item whose retry tests the fault; None: paused by `pause`


class Lane:
    """A worker thread with its own queue.

    Parameters
    ----------
    name
        Used for the thread and the log ("ingest", "render").
    handler
        Does the work for one path; any exception counts as a failure.
    on_failure
        Called with the path and the last error once no retry is left.
    policy
        Retry settings; replace `policy` to apply a reloaded config.
    """

    def __init__(self, name: str, *, handler: Callable[[Path], None],
                 on_failure: Callable[[Path, BaseException], None], policy: LanePolicy) -> None:
        self.name = name
        self.handler = handler
        self.on_failure = on_failure
        self.policy = policy
        self.current: Path | None = None
        self._heap: list[tuple[float, int, Path, int]] = []  # (ready at, order, path, attempt)
        self._waiting: set[Path] = set()
        self._rerun: set[Path] = set()
        self._holds: dict[Path, tuple[int, str]] = {}  # held path → (tries so far, reason)
        self._pause: _Pause | None = None
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"traum-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, path: Path) -> bool:
        """Queue `path`; False if it is already waiting or the lane is stopping."""
        with self._cond:
            if self._stopping or path in self._waiting:
                return False
            if path == self.current:
                self._rerun.add(path)
                return True
            self._push(path, attempt=0, delay=0.0)
            return True

    def depth(self) -> tuple[int, int]:
        """Return ``(running, waiting)``: the item in progress (0 or 1) and queued items,
        including those waiting for a retry."""
        with self._cond:
            return (int(self.current is not None), len(self._waiting))

    def paused(self) -> str | None:
        """Why the lane is paused, or None while it runs."""
        with self._cond:
            return self._pause.reason if self._pause else None

    def held(self) -> dict[str, str]:
        """Items held by a fault of their own: name → reason."""
        with self._cond:
            probe = self._pause.probe if self._pause else None
            return {path.name: reason for path, (_, reason) in self._holds.items()
                    if path != probe}

    def pause(self, reason: str) -> None:
        """Run nothing until `resume` (the work cannot start: the library is unusable)."""
        with self._cond:
            self._pause = _Pause(reason, probe=None)

    def resume(self) -> None:
        with self._cond:
            self._pause = None
            self._cond.notify_all()

    def busy_with(self, path: Path) -> bool:
        """True if `path` is queued, waiting for a retry or running."""
        with self._cond:
            return path == self.current or path in self._waiting

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Take no more work; drop queued items (the next start's scan finds them again).
        The running item finishes; use `join` to wait for it."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._waiting.clear()
            self._rerun.clear()
            self._holds.clear()
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it did within `timeout`."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _push(self, path: Path, *, attempt: int, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), path, attempt))
        self._waiting.add(path)
        self._cond.notify_all()

    def _next(self) -> tuple[Path, int] | None:
        """Block until an item is ready; None once the lane stops. While paused, only the
        probe is ready, at its retry time."""
        with self._cond:
            while not self._stopping:
                entry = self._ready_entry()
                if entry is not None and entry[0] <= time.monotonic():
                    self._heap.remove(entry)
                    heapq.heapify(self._heap)
                    _, _, path, attempt = entry
                    self._waiting.discard(path)
                    self.current = path
                    return path, attempt
                self._cond.wait(None if entry is None else entry[0] - time.monotonic())
            return None

    def _ready_entry(self) -> tuple[float, int, Path, int] | None:
        """The heap entry to run next (maybe not ready yet), or None to wait for news."""
        if self._pause is None:
            return self._heap[0] if self._heap else None
        probe = self._pause.probe
        return next((entry for entry in self._heap if entry[2] == probe), None)

    def _run(self) -> None:
        while (item := self._next()) is not None:
            path, attempt = item
            try:
                self._attempt(path, attempt)
            finally:
                with self._cond:
                    self.current = None
                    if path in self._rerun:
                        self._rerun.discard(path)
                        if not self._stopping and path not in self._waiting:
                            self._push(path, attempt=0, delay=0.0)

    def _attempt(self, path: Path, attempt: int) -> None:
        started = time.monotonic()
        try:
            self.handler(path)
        except Exception as exc:
            self._failed(path, attempt, exc)
        else:
            self._cleared(path)
            log.debug("%s done: %s (%.2f s)", self.name, path, time.monotonic() - started)

    def _failed(self, path: Path, attempt: int, exc: Exception) -> None:
        policy = self.policy
        hold = policy.hold(exc)
        if hold is not None and path.exists():
            self._hold(path, attempt, hold, exc)
            return
        self._cleared(path)
        if attempt < policy.retries and policy.retryable(exc) and path.exists():
            delay = policy.backoff_seconds * 2 ** attempt
            log.warning("%s failed (attempt %d of %d), retrying in %.1f s: %s",
                        self.name, attempt + 1, policy.retries + 1, delay, exc)
            with self._cond:
                if not self._stopping and path not in self._waiting:
                    self._push(path, attempt=attempt + 1, delay=delay)
            return
        try:
            self.on_failure(path, exc)
        except Exception:
            log.exception("%s: failure hook for %s failed", self.name, path)

    def _hold(self, path: Path, attempt: int, hold: Hold, exc: Exception) -> None:
        """Retry `path` after a doubling backoff; pause the lane for a lane-wide fault.
        Logged when the reason changes, not at every try."""
        policy = self.policy
        with self._cond:
            if self._stopping:
                return
            tries, before = self._holds.get(path, (0, ""))
            # The doubling stops counting long past any cap: a fault held for days makes
            # thousands of tries, and 2.0 ** 1100 overflows a float.
            delay = min(policy.backoff_seconds * 2.0 ** min(tries, MAX_DOUBLINGS),
                        policy.max_backoff_seconds)
            self._holds[path] = (tries + 1, hold.reason)
            if hold.scope == "lane":
                before = self._pause.reason if self._pause else ""
                self._pause = _Pause(hold.reason, probe=path)
            if path not in self._waiting:
                self._push(path, attempt=attempt, delay=delay)
        state = "paused" if hold.scope == "lane" else f"holds {path.name}"
        if hold.reason != before:  # the traceback goes to the log with --debug only
            log.error("%s %s: %s; next try in %.1f s", self.name, state, exc, delay,
                      exc_info=exc)
        else:
            log.debug("%s still %s: %s (retrying in %.1f s)", self.name, state, hold.reason,
                      delay)

    def _cleared(self, path: Path) -> None:
        """`path` left the lane or got past its fault: forget its hold, end a pause it probed."""
        with self._cond:
            held = self._holds.pop(path, None)
            pause = self._pause
            if pause is not None and pause.probe == path:
                self._pause = None
                self._cond.notify_all()
        if pause is not None and pause.probe == path:
            log.info("%s resumed: no longer %s", self.name, pause.reason)
        elif held is not None:
            log.info("%s: %s no longer held (%s)", self.name, path.name, held[1])
