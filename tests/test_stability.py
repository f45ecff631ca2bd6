"""StabilityTracker on real files and folders, with a hand-driven clock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.service.stability import StabilityTracker, take_snapshot

SETTLE = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(clock: Clock) -> StabilityTracker:
    return StabilityTracker(settle_seconds=SETTLE, clock=clock)


def test_file_is_due_once_after_settle(tmp_path: Path, clock: Clock,
                                       tracker: StabilityTracker) -> None:
    kit = tmp_path / "kit.zip"
    kit.write_bytes(b"PK" * 10)
    tracker.touch(kit)
    clock.now += SETTLE - 0.1
    assert tracker.due() == []
    clock.now += 0.2
    assert tracker.due() == [kit]
    assert tracker.due() == []
    assert tracker.pending() == 0


def test_growing_file_is_not_due_until_it_stops(tmp_path: Path, clock: Clock,
                                                tracker: StabilityTracker) -> None:
    kit = tmp_path / "kit.zip"
    kit.write_bytes(b"a")
    tracker.add(kit)  # as a scan would: no events while it grows
    for _ in range(5):
        clock.now += SETTLE * 0.75
        with kit.open("ab") as handle:
            handle.write(b"more")
        assert tracker.due() == []
    clock.now += SETTLE * 0.75
    assert tracker.due() == []  # unchanged, but only for 0.75 settle periods
    clock.now += SETTLE * 0.5
    assert tracker.due() == [kit]


def test_event_restarts_the_settle_time(tmp_path: Path, clock: Clock,
                                        tracker: StabilityTracker) -> None:
    kit = tmp_path / "kit.wav"
    kit.write_bytes(b"x")
    tracker.touch(kit)
    clock.now += SETTLE - 0.5
    tracker.touch(kit)
    clock.now += SETTLE - 0.5
    assert tracker.due() == []
    clock.now += 0.6
    assert tracker.due() == [kit]


def test_rescan_add_does_not_postpone_a_tracked_entry(tmp_path: Path, clock: Clock,
                                                      tracker: StabilityTracker) -> None:
    kit = tmp_path / "kit.wav"
    kit.write_bytes(b"x")
    tracker.touch(kit)
    clock.now += SETTLE - 0.5
    tracker.add(kit)
    clock.now += 0.6
    assert tracker.due() == [kit]


def test_folder_tree_change_deep_inside_resets(tmp_path: Path, clock: Clock,
                                               tracker: StabilityTracker) -> None:
    kit = tmp_path / "KitA"
    deep = kit / "Drums" / "Kicks"
    deep.mkdir(parents=True)
    (deep / "kick.wav").write_bytes(b"1234")
    tracker.touch(kit)
    clock.now += SETTLE - 0.1
    (deep / "kick2.wav").write_bytes(b"5678")  # no event reaches the tracker
    assert tracker.due() == []
    clock.now += SETTLE - 0.1
    assert tracker.due() == []
    clock.now += 0.2
    assert tracker.due() == [kit]


def test_deleted_and_forgotten_entries_are_dropped(tmp_path: Path, clock: Clock,
                                                   tracker: StabilityTracker) -> None:
    gone, moved = tmp_path / "gone.zip", tmp_path / "moved.zip"
    for path in (gone, moved):
        path.write_bytes(b"PK")
        tracker.touch(path)
    gone.unlink()
    tracker.forget(moved)
    clock.now += SETTLE * 2
    assert tracker.due() == []
    assert tracker.pending() == 0


def test_symlink_is_never_due(tmp_path: Path, clock: Clock, tracker: StabilityTracker) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    tracker.touch(link)
    clock.now += SETTLE * 2
    assert tracker.due() == []
    assert tracker.pending() == 0


def test_snapshot_of_a_tree(tmp_path: Path) -> None:
    kit = tmp_path / "Kit"
    (kit / "sub").mkdir(parents=True)
    (kit / "a.wav").write_bytes(b"abc")
    (kit / "sub" / "b.wav").write_bytes(b"defgh")
    count, size, newest = take_snapshot(kit)
    assert (count, size) == (4, 8)  # Kit, sub, a.wav, b.wav
    os.utime(kit / "sub" / "b.wav", ns=(newest + 10**9, newest + 10**9))
    assert take_snapshot(kit)[2] == newest + 10**9
    (kit / "sub" / "b.wav").unlink()
    assert take_snapshot(kit)[:2] == (3, 3)


def test_snapshot_of_missing_or_special_files(tmp_path: Path) -> None:
    assert take_snapshot(tmp_path / "missing") is None
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert take_snapshot(fifo) is None
