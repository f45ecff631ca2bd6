"""Work lanes: one thread per kind of work, so a render never waits behind a big ingest.

A `Lane` runs its items one at a time, in submission order. It ignores a path that is
already waiting; a path submitted while it runs is run once more afterwards (it changed
while being worked on). A failure is retried with exponential backoff when the lane's
policy says a retry can help; after the last attempt the lane's failure hook runs. The
hook and the handler are the per-item error boundary: nothing they raise stops the lane.
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


@dataclass
class LanePolicy:
    """How a lane retries.

    Attributes
    ----------
    retries
        Extra attempts after the first failure (``daemon.retries``).
    backoff_seconds
        Wait before the first retry; it doubles for every further one.
    retryable
        Whether an error may go away on its own (a locked database, a full disk) rather
        than being a property of the input (an empty prompt, a corrupt zip).
    """

    retries: int
    backoff_seconds: float
    retryable: Callable[[BaseException], bool] = field(default=lambda exc: True)


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
        """Block until an item is ready; None once the lane stops."""
        with self._cond:
            while not self._stopping:
                if self._heap and self._heap[0][0] <= time.monotonic():
                    _, _, path, attempt = heapq.heappop(self._heap)
                    self._waiting.discard(path)
                    self.current = path
                    return path, attempt
                timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                self._cond.wait(timeout)
            return None

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
            log.debug("%s done: %s (%.2f s)", self.name, path, time.monotonic() - started)

    def _failed(self, path: Path, attempt: int, exc: Exception) -> None:
        policy = self.policy
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
