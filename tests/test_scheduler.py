"""The daemon's scheduler: interval jobs on the monotonic clock, one thread each."""

from __future__ import annotations

import threading
import time

import pytest

from daemon.service.scheduler import Scheduler

WAIT = 10.0


class Counter:
    def __init__(self, *, fail: bool = False, hold: threading.Event | None = None) -> None:
        self.runs = 0
        self.fail, self.hold = fail, hold
        self.changed = threading.Condition()

    def __call__(self) -> None:
        with self.changed:
            self.runs += 1
            self.changed.notify_all()
        if self.hold is not None:
            self.hold.wait(WAIT)
        if self.fail:
            raise RuntimeError("job broke")

    def wait_runs(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.runs >= count, WAIT), self.runs


@pytest.fixture
def scheduler():
    made = Scheduler()
    yield made
    made.shutdown(wait=True)


def test_jobs_repeat_and_a_failing_one_keeps_running(scheduler: Scheduler,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    steady, broken = Counter(), Counter(fail=True)
    scheduler.add("steady", steady, seconds=0.01)
    scheduler.add("broken", broken, seconds=0.01)
    steady.wait_runs(5)
    broken.wait_runs(3)
    assert scheduler.alive()
    assert "broken job failed; it runs again in 0.0 s" in caplog.text


def test_a_job_never_runs_twice_at_once_nor_catches_up(scheduler: Scheduler) -> None:
    release = threading.Event()
    slow = Counter(hold=release)
    scheduler.add("slow", slow, seconds=0.001, first=0.0)
    slow.wait_runs(1)
    time.sleep(0.05)  # fifty intervals pass while the first run is held
    assert slow.runs == 1
    release.set()
    slow.wait_runs(3)  # then it simply goes on, one run after the other


def test_set_interval_applies_to_a_waiting_job(scheduler: Scheduler) -> None:
    job = Counter()
    scheduler.add("rare", job, seconds=3600.0)
    scheduler.set_interval("rare", 0.01)
    job.wait_runs(2)


def test_shutdown_stops_every_job(scheduler: Scheduler) -> None:
    job = Counter()
    scheduler.add("tick", job, seconds=0.01)
    job.wait_runs(1)
    scheduler.shutdown(wait=True)
    assert not scheduler.alive()
