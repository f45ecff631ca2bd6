"""Watching: junk filtering, top-level mapping, needs_render, scans, real observers."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from daemon.folders import (
    inbox_entry,
    is_junk,
    needs_render,
    request_entry,
    scan_inbox,
    scan_requests,
)
from daemon.service.stability import StabilityTracker
from daemon.service.watch import EntryHandler, start_observer

SETTLE = 0.3
POLL = 0.1


@pytest.mark.parametrize("name", [".DS_Store", "._kick.wav", "__MACOSX", "Thumbs.db",
                                  "kit.zip.part", "kit.zip.crdownload", "kit.tmp", ".hidden",
                                  "~$notes.docx", "readme.txt", "cover.jpg",
                                  "kit.zip.traum-tmp"])
def test_junk_names(name: str) -> None:
    assert is_junk(name)


@pytest.mark.parametrize("name", ["KitA", "kit.zip", "Kick 01.wav", "bass.flac", "x.prompt"])
def test_real_names(name: str) -> None:
    assert not is_junk(name)


def test_inbox_events_map_to_the_top_level_entry(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    assert inbox_entry(inbox, inbox / "KitA" / "sub" / "x.wav") == inbox / "KitA"
    assert inbox_entry(inbox, inbox / "KitA" / ".DS_Store") == inbox / "KitA"
    assert inbox_entry(inbox, inbox / "kit.zip") == inbox / "kit.zip"
    assert inbox_entry(inbox, inbox / "__MACOSX" / "KitA" / "._x.wav") is None
    assert inbox_entry(inbox, inbox / "kit.zip.part") is None
    assert inbox_entry(inbox, inbox) is None
    assert inbox_entry(inbox, tmp_path / "elsewhere" / "x.wav") is None


def test_only_prompts_directly_in_requests_count(tmp_path: Path) -> None:
    requests = tmp_path / "requests"
    assert request_entry(requests, requests / "song.prompt") == requests / "song.prompt"
    for name in ("song.wav", "song.json", "song.error.txt", "song.prompt.tmp", ".song.prompt",
                 "sub/song.prompt"):
        assert request_entry(requests, requests / name) is None, name


def _stamp(path: Path, seconds: int, text: str = "x") -> None:
    path.write_text(text)
    os.utime(path, (seconds, seconds))


def test_needs_render(tmp_path: Path) -> None:
    prompt = tmp_path / "song.prompt"
    _stamp(prompt, 1000, "techno")
    assert needs_render(prompt)
    _stamp(tmp_path / "song.wav", 1001)
    assert needs_render(prompt)  # the JSON is missing
    _stamp(tmp_path / "song.json", 1000)  # as new as the prompt counts (coarse clocks)
    assert not needs_render(prompt)
    _stamp(prompt, 1002, "techno, darker")  # edited
    assert needs_render(prompt)
    _stamp(tmp_path / "song.error.txt", 1003)  # failed since: wait for the next edit
    assert not needs_render(prompt)
    _stamp(prompt, 1004, "house")
    assert needs_render(prompt)
    assert not needs_render(tmp_path / "missing.prompt")


def test_scans_find_entries_oldest_first(tmp_path: Path) -> None:
    inbox, requests = tmp_path / "inbox", tmp_path / "requests"
    (inbox / "KitB").mkdir(parents=True)
    os.utime(inbox / "KitB", (2000, 2000))
    _stamp(inbox / "kit.zip", 1000)
    _stamp(inbox / ".DS_Store", 500)
    _stamp(inbox / "late.zip.part", 500)
    requests.mkdir()
    _stamp(requests / "new.prompt", 1000)
    _stamp(requests / "done.prompt", 1000)
    _stamp(requests / "done.wav", 1001)
    _stamp(requests / "done.json", 1001)
    assert scan_inbox(inbox) == [inbox / "kit.zip", inbox / "KitB"]
    assert scan_requests(requests) == [requests / "new.prompt"]
    assert scan_inbox(tmp_path / "missing") == []


@pytest.fixture(params=["native", "polling"])
def watched(request, tmp_path: Path) -> Iterator[tuple[Path, Path, StabilityTracker,
                                                       StabilityTracker]]:
    inbox, requests = tmp_path / "inbox", tmp_path / "requests"
    inbox.mkdir()
    requests.mkdir()
    inbox_tracker = StabilityTracker(settle_seconds=SETTLE)
    request_tracker = StabilityTracker(settle_seconds=SETTLE)
    observer = start_observer([
        (inbox, EntryHandler(tracker=inbox_tracker, locate=lambda p: inbox_entry(inbox, p))),
        (requests, EntryHandler(tracker=request_tracker,
                                locate=lambda p: request_entry(requests, p))),
    ], polling=request.param == "polling", poll_seconds=POLL)
    time.sleep(POLL * 2)  # the polling observer's first snapshot
    yield inbox, requests, inbox_tracker, request_tracker
    observer.stop()
    observer.join()


def _collect(tracker: StabilityTracker, expected: set[Path], timeout: float = 10.0) -> set[Path]:
    """Everything that settles until `expected` did, plus three more settle periods."""
    seen: set[Path] = set()
    deadline = time.monotonic() + timeout
    while not expected <= seen and time.monotonic() < deadline:
        seen.update(tracker.due())
        time.sleep(0.05)
    quiet_until = time.monotonic() + SETTLE * 3
    while time.monotonic() < quiet_until:
        seen.update(tracker.due())
        time.sleep(0.05)
    return seen


def test_nested_writes_settle_as_the_kit_and_junk_is_ignored(watched) -> None:
    inbox, _, tracker, _ = watched
    (inbox / "KitA" / "Drums").mkdir(parents=True)
    for index in range(3):
        (inbox / "KitA" / "Drums" / f"kick{index}.wav").write_bytes(b"RIFF" * 100)
        time.sleep(SETTLE / 3)
    (inbox / ".DS_Store").write_bytes(b"junk")
    (inbox / "__MACOSX").mkdir()
    (inbox / "__MACOSX" / "._kick.wav").write_bytes(b"junk")
    (inbox / "notes.txt").write_text("junk")
    assert _collect(tracker, {inbox / "KitA"}) == {inbox / "KitA"}


def test_part_renamed_to_zip_and_deleted_before_settle(watched) -> None:
    inbox, _, tracker, _ = watched
    (inbox / "kit.zip.part").write_bytes(b"PK" * 100)
    (inbox / "gone.zip").write_bytes(b"PK")
    time.sleep(POLL * 2)
    (inbox / "gone.zip").unlink()
    os.rename(inbox / "kit.zip.part", inbox / "kit.zip")
    assert _collect(tracker, {inbox / "kit.zip"}) == {inbox / "kit.zip"}


def test_folder_moved_in(watched, tmp_path: Path) -> None:
    inbox, _, tracker, _ = watched
    outside = tmp_path / "Downloads" / "KitM"
    (outside / "Loops").mkdir(parents=True)
    (outside / "Loops" / "bass.wav").write_bytes(b"RIFF")
    shutil.move(str(outside), str(inbox / "KitM"))
    assert _collect(tracker, {inbox / "KitM"}) == {inbox / "KitM"}


def test_only_prompts_trigger_in_requests(watched) -> None:
    _, requests, _, tracker = watched
    for name in ("a.wav", "a.json", "a.error.txt", ".a.wav.tmp", "notes.txt"):
        (requests / name).write_text("output")
    temp = requests / "b.prompt.tmp"
    temp.write_text("techno")
    os.rename(temp, requests / "b.prompt")
    (requests / "a.prompt").write_text("house")
    assert _collect(tracker, {requests / "a.prompt", requests / "b.prompt"}) == {
        requests / "a.prompt", requests / "b.prompt"}


def test_handler_error_does_not_stop_the_observer(tmp_path: Path) -> None:
    class Flaky(StabilityTracker):
        calls = 0

        def touch(self, path: Path) -> None:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("boom")
            super().touch(path)

    tracker = Flaky(settle_seconds=SETTLE)
    observer = start_observer([(tmp_path, EntryHandler(
        tracker=tracker, locate=lambda p: inbox_entry(tmp_path, p)))], polling=False)
    try:
        (tmp_path / "first.wav").write_bytes(b"1")
        time.sleep(0.3)
        (tmp_path / "second.wav").write_bytes(b"2")
        assert tmp_path / "second.wav" in _collect(tracker, {tmp_path / "second.wav"})
        assert observer.is_alive()
    finally:
        observer.stop()
        observer.join()


def test_falls_back_to_polling_when_inotify_fails(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    class NoInotify(Observer):
        def start(self) -> None:
            raise OSError(24, "inotify instance limit reached")

    tracker = StabilityTracker(settle_seconds=SETTLE)
    observer = start_observer([(tmp_path, EntryHandler(
        tracker=tracker, locate=lambda p: inbox_entry(tmp_path, p)))],
        polling=False, poll_seconds=POLL, native=NoInotify)
    try:
        assert isinstance(observer, PollingObserver)
        assert "falling back to polling" in caplog.text
        time.sleep(POLL * 2)
        (tmp_path / "kit.zip").write_bytes(b"PK")
        assert _collect(tracker, {tmp_path / "kit.zip"}) == {tmp_path / "kit.zip"}
    finally:
        observer.stop()
        observer.join()
