"""The background job behind the kit profiles: requests during a run merge into one more
run, waiters see it idle, close finishes what was asked, and a bug does not hang a waiter."""

from __future__ import annotations

import threading

import pytest

from daemon.coalesce import CoalescingJob


class Gate:
    """A job that records its runs and, while `hold` is set, waits inside each run."""

    def __init__(self) -> None:
        self.runs = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self) -> None:
        self.runs += 1
        self.entered.set()
        assert self.release.wait(30)


def held_run() -> tuple[Gate, CoalescingJob]:
    """A job whose first run has started and waits for its gate's release."""
    gate = Gate()
    gate.release.clear()
    job = CoalescingJob(gate, name="test-coalesce")
    job.request()
    assert gate.entered.wait(30)
    return gate, job


def test_requests_during_a_run_merge_into_one_more_run() -> None:
    gate, job = held_run()
    for _ in range(5):  # while the first run is held: one more run covers them all
        job.request()
    assert not job.wait_idle(timeout=0.05)
    gate.release.set()
    assert job.wait_idle(timeout=30)
    assert gate.runs == 2
    assert job.close(timeout=30)


def test_no_request_no_run_and_close_without_a_thread() -> None:
    gate = Gate()
    job = CoalescingJob(gate, name="test-coalesce")
    assert job.wait_idle(timeout=0)
    assert job.close(timeout=0)
    job.request()  # after close: ignored
    assert gate.runs == 0


def test_close_finishes_the_pending_run_then_ends() -> None:
    gate, job = held_run()
    job.request()
    closing = threading.Thread(target=lambda: job.close(timeout=30))
    closing.start()
    gate.release.set()
    closing.join(30)
    assert not closing.is_alive()
    assert gate.runs == 2


def test_a_failing_run_releases_waiters_and_the_next_request_runs_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    runs: list[int] = []

    def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("a bug")

    job = CoalescingJob(flaky, name="test-coalesce")
    job.request()
    assert job.wait_idle(timeout=30)
    job._thread.join(30)  # the thread ended with the bug
    assert [type(exc) for exc in seen] == [ValueError]
    job.request()
    assert job.wait_idle(timeout=30)
    assert len(runs) == 2
    assert job.close(timeout=30)
