"""Lanes and faults of the machine: a lane-wide fault pauses the lane, an item's own fault
holds only that item; both are retried with a doubling, capped backoff until they clear."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from daemon.service.queue import Hold, Lane, LanePolicy

WAIT = 10.0  # seconds any expected event may take on a busy machine


class Fault(Exception):
    def __init__(self, scope: str, reason: str) -> None:
        super().__init__(reason)
        self.scope, self.reason = scope, reason


class Work:
    """A handler whose items fail with a `Fault` while `faults` names them; every call is
    recorded and announced."""

    def __init__(self) -> None:
        self.faults: dict[str, Fault] = {}
        self.calls: list[str] = []
        self.failed: list[str] = []
        self.called = threading.Condition()

    def handle(self, path: Path) -> None:
        with self.called:
            self.calls.append(path.name)
            self.called.notify_all()
        if path.name in self.faults:
            raise self.faults[path.name]

    def wait_calls(self, predicate) -> None:
        with self.called:
            assert self.called.wait_for(lambda: predicate(self.calls), WAIT), self.calls

    def on_failure(self, path: Path, exc: BaseException) -> None:
        self.failed.append(path.name)


@pytest.fixture
def work() -> Work:
    return Work()


def lane_for(work: Work, *, backoff: float = 0.01, cap: float = 0.05) -> Lane:
    lane = Lane("test", handler=work.handle, on_failure=work.on_failure,
                policy=LanePolicy(retries=0, backoff_seconds=backoff,
                                  hold=lambda exc: Hold(exc.scope, exc.reason)
                                  if isinstance(exc, Fault) else None,
                                  max_backoff_seconds=cap))
    lane.start()
    return lane


def items(tmp_path: Path, *names: str) -> list[Path]:
    paths = [tmp_path / name for name in names]
    for path in paths:
        path.write_text("x")
    return paths


def test_a_lane_fault_pauses_the_lane_until_it_clears(tmp_path: Path, work: Work) -> None:
    first, second = items(tmp_path, "first", "second")
    work.faults["first"] = Fault("lane", "library disk full (0 MB free)")
    lane = lane_for(work)
    lane.submit(first)
    lane.submit(second)
    work.wait_calls(lambda calls: calls.count("first") >= 4)  # retried, again and again
    assert "second" not in work.calls  # paused: nothing else runs meanwhile
    assert lane.paused() == "library disk full (0 MB free)" and lane.held() == {}
    assert sum(lane.depth()) == 2  # both still in the lane (one may be mid-retry)
    del work.faults["first"]
    work.wait_calls(lambda calls: calls[-1:] == ["second"])
    assert lane.paused() is None and work.failed == []  # a fault is never a failure
    assert work.calls[-2:] == ["first", "second"]  # the paused item kept its place


def test_an_item_fault_holds_that_item_only(tmp_path: Path, work: Work) -> None:
    locked, other = items(tmp_path, "locked", "other")
    work.faults["locked"] = Fault("item", "inbox permission denied on locked")
    lane = lane_for(work)
    lane.submit(locked)
    lane.submit(other)
    work.wait_calls(lambda calls: "other" in calls and calls.count("locked") >= 3)
    assert lane.paused() is None
    assert lane.held() == {"locked": "inbox permission denied on locked"}
    assert lane.busy_with(locked)  # still queued: a rescan does not submit it twice
    del work.faults["locked"]
    work.wait_calls(lambda calls: calls.count("locked") >= 1 and lane.held() == {})
    assert work.failed == []


def test_a_vanished_item_ends_its_hold_as_a_failure(tmp_path: Path, work: Work) -> None:
    [gone] = items(tmp_path, "gone")
    work.faults["gone"] = Fault("lane", "outbox disk full (0 MB free)")
    lane = lane_for(work)
    lane.submit(gone)
    work.wait_calls(lambda calls: len(calls) >= 2)
    gone.unlink()  # the user deleted the prompt while the lane waited
    work.wait_calls(lambda calls: work.failed == ["gone"])
    assert lane.paused() is None


def test_the_backoff_doubles_up_to_its_cap(tmp_path: Path, work: Work,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    lane = lane_for(work, backoff=0.001, cap=0.004)
    original = lane._push

    def recording_push(path: Path, *, attempt: int, delay: float) -> None:
        delays.append(delay)
        original(path, attempt=attempt, delay=delay)

    monkeypatch.setattr(lane, "_push", recording_push)
    [stuck] = items(tmp_path, "stuck")
    work.faults["stuck"] = Fault("lane", "stems.db locked by another process")
    lane.submit(stuck)
    work.wait_calls(lambda calls: len(calls) >= 6)
    assert delays[:6] == [0.0, 0.001, 0.002, 0.004, 0.004, 0.004]
    lane.stop()  # the fault stays: without a stop the lane would retry it all session


def test_pause_from_outside_holds_everything_until_resume(tmp_path: Path, work: Work) -> None:
    [waiting] = items(tmp_path, "waiting")
    lane = lane_for(work)
    lane.pause("library read-only")
    lane.submit(waiting)
    assert lane.paused() == "library read-only" and lane.depth() == (0, 1)
    lane.resume()
    work.wait_calls(lambda calls: calls == ["waiting"])


def test_a_fault_held_for_thousands_of_tries_is_still_retried(tmp_path: Path,
                                                              work: Work) -> None:
    """A full disk may last days: tries go on at the capped backoff, however many there
    are (the doubling once overflowed a float after 1,024 tries and killed the lane)."""
    lane = lane_for(work, backoff=0.00001, cap=0.00002)
    [stuck] = items(tmp_path, "stuck")
    work.faults["stuck"] = Fault("lane", "library disk full (0 MB free)")
    lane.submit(stuck)
    work.wait_calls(lambda calls: len(calls) >= 1_200)
    del work.faults["stuck"]
    work.wait_calls(lambda calls: lane.paused() is None and sum(lane.depth()) == 0)
    assert work.failed == []
    lane.stop()
