"""The cluster's two tasks as a worker runs them: claim the item, do its work once, give it
back.

A job carries only the item's name (an inbox entry, a prompt file relative to the requests
folder). The work itself is the single machine's: `Ingests` and `Renders` around the engine,
with the same retry policy (`daemon.service.daemon.lane_policy`). What makes it happen once
is the claim (`daemon.store.cluster`) plus what the work leaves behind:

- ingest: the kit's journal resumes where a killed worker stopped, and a finished kit has
  left the inbox, so a second delivery finds nothing to do;
- render: the claim's `done_mark` is the prompt's mtime once its WAV (or its error file) is
  written, so a second delivery of the same text does nothing.

An item another worker holds is left to it; if that worker dies, its claim expires and the
next delivery (a stalled job queued again, or the watcher's rescan) takes it over.

A failed attempt is retried inside the job, holding the claim, as a lane retries its item:
a job queued again by procrastinate would collide with the copy a rescan queued meanwhile
(one waiting job per item), and the daemon's retry policy would be lost between the two.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from procrastinate import Blueprint, JobContext

from daemon.service.ingests import Ingests
from daemon.service.queue import LanePolicy
from daemon.service.renders import Renders
from daemon.service.stability import take_snapshot
from daemon.store.cluster import claim_holder, release_claim, take_claim

log = logging.getLogger("traum.worker")


def build_blueprint() -> Blueprint:
    """A new blueprint of the two tasks, ``ingest`` and ``render``, for one app: adding a
    blueprint to an app renames its tasks into that app's namespace, so a second app (the
    tests build several in one process) needs a blueprint of its own."""
    blueprint = Blueprint()
    blueprint.task(name="ingest", queue="ingest", pass_context=True)(ingest)
    blueprint.task(name="render", queue="render", pass_context=True)(render)
    return blueprint


def ingest(context: JobContext, item: str) -> str:
    """Ingest the inbox entry `item`."""
    return _logged(runner_of(context).ingest(item))


def render(context: JobContext, item: str) -> str:
    """Render the prompt `item` (relative to the requests folder)."""
    return _logged(runner_of(context).render(item))


def runner_of(context: JobContext) -> Runner:
    return context.additional_context["runner"]


def _logged(outcome: str) -> str:
    log.info("%s", outcome)
    return outcome


class Runner:
    """What a worker's tasks share: the engine (its `Work`), the worker's name (the holder
    of its claims), how long a claim lasts, the lane policy, and the stop request that
    cuts a wait between two attempts short."""

    def __init__(self, work, *, holder: str, claim_seconds: float,
                 policy: LanePolicy) -> None:
        self.work = work
        self.holder = holder
        self.claim_seconds = claim_seconds
        self.policy = policy
        self.stopping = threading.Event()

    def ingest(self, item: str) -> str:
        entry = self.work.config.paths.inbox / item
        if not os.path.lexists(entry):
            return f"{item}: not in the inbox (ingested already, or removed)"
        ingests = Ingests(self.work.ingest)
        # An entry whose ingest failed for good stays until somebody changes it; its
        # snapshot is the mark that stops the watcher's rescans from failing it again.
        return self._once("ingest", item, entry, mark=lambda: _snapshot_mark(entry),
                          work=lambda: ingests.handle(entry), fail=ingests.failed,
                          mark_success=False)

    def render(self, item: str) -> str:
        prompt = self.work.config.paths.requests / item
        if not prompt.exists():
            return f"{item}: no such prompt (deleted)"
        renders = Renders(self.work.render)
        return self._once("render", item, prompt, mark=lambda: _mtime_mark(prompt),
                          work=lambda: renders.handle(prompt), fail=renders.failed,
                          mark_success=True)

    def _once(self, lane: str, item: str, path: Path, *, mark: Callable[[], str],
              work: Callable[[], None], fail: Callable[[Path, BaseException], None],
              mark_success: bool) -> str:
        """Claim `item`, run `work` unless its current `mark` was finished already, and
        give the claim back with the mark of what was finished."""
        claim = take_claim(lane, item, holder=self.holder, seconds=self.claim_seconds)
        if claim is None:
            holder = claim_holder(lane, item)
            return f"{item}: {lane} held by {holder[0] if holder else 'another worker'}"
        finished = None
        try:
            current = mark()
            if current and claim.done_mark == current:
                return f"{item}: {lane} done already"
            failure = self._attempts(lane, path, work)
            if failure is None:
                finished = current if mark_success else ""
                return f"{item}: {lane} done"
            if self.stopping.is_set():
                return f"{item}: {lane} left for later (stopping)"
            fail(path, failure)
            finished = current  # this input failed for good: not again until it changes
            return f"{item}: {lane} failed: {failure}"
        finally:
            if not release_claim(claim, done_mark=finished):
                log.warning("%s of %s: the claim expired and another worker took it over "
                            "(is claim_seconds too short for this machine?)", lane, item)


    def _attempts(self, lane: str, path: Path, work: Callable[[], None]
                  ) -> Exception | None:
        """Run `work` until it succeeds (None) or fails for good (the error), waiting
        between attempts as the policy says; the per-item error boundary. A stop request
        ends the waiting with the last error."""
        attempt = 0
        while True:
            try:
                work()
            except Exception as exc:
                delay = retry_delay(self.policy, exc, attempt)
                if delay is None or not os.path.lexists(path):
                    return exc
                _log_retry(lane, path, exc, delay)
                if self.stopping.wait(delay):
                    return exc
                attempt += 1
            else:
                return None


def retry_delay(policy: LanePolicy, exc: BaseException, attempt: int) -> float | None:
    """Seconds until the next try after failed attempt number `attempt` (0 for the first),
    or None when the failure is final: as the daemon's lanes decide (`daemon.service.queue`)
    — a fault of the machine is retried with a doubling backoff for as long as it lasts, a
    retryable error ``retries`` times, bad input never."""
    backoff = policy.backoff_seconds * 2 ** attempt
    if policy.hold(exc) is not None:
        return min(backoff, policy.max_backoff_seconds)
    if attempt < policy.retries and policy.retryable(exc):
        return backoff
    return None


def _log_retry(lane: str, path: Path, exc: BaseException, delay: float) -> None:
    # The journald formatter drops the traceback unless the worker runs with --debug.
    log.error("%s of %s failed, next try in %.1f s: %s", lane, path.name, delay, exc,
              exc_info=exc)


def _snapshot_mark(entry: Path) -> str:
    snapshot = take_snapshot(entry)
    return "" if snapshot is None else "snapshot:" + ",".join(map(str, snapshot))


def _mtime_mark(prompt: Path) -> str:
    try:
        return f"mtime:{prompt.stat().st_mtime_ns}"
    except OSError:
        return ""
