"""sd_notify over a real AF_UNIX datagram socket, the watchdog interval, journald logging."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.errors import StoreError
from daemon.service.notify import JournalFormatter, notify, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(2.0)
    yield sock
    sock.close()


def test_no_socket_means_no_notification(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_sends_one_datagram_per_message(listener: socket.socket,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.getsockname())
    assert notify("READY=1\nSTATUS=ingest 0 running")
    assert notify("STOPPING=1")
    assert listener.recv(4096) == b"READY=1\nSTATUS=ingest 0 running"
    assert listener.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"traum-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_a_receiver_that_stops_reading_does_not_block_us(
        listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.getsockname())
    for _ in range(10_000):  # far more than any datagram queue holds
        started = time.monotonic()
        if not notify("WATCHDOG=1"):
            break
    else:
        pytest.fail("the receiver's queue never filled up")
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("value", ["/nonexistent/notify.sock", "vsock:2:1234"])
def test_unusable_socket_is_not_an_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert notify("READY=1") is False


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    ("60000000", None, 30.0),
    ("1000000", "self", 0.5),
    ("1000000", "1", None),  # meant for another process
    ("0", None, None),
    ("soon", None, None),
    (None, None, None),
])
def test_watchdog_interval_is_half_the_timeout(usec, pid, expected,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert watchdog_interval() == expected


def _record(level: int, message: str, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("traum.watch", level, __file__, 1, message, None, exc_info)


def test_journal_prefixes() -> None:
    formatter = JournalFormatter()
    assert formatter.format(_record(logging.INFO, "ready")) == "<6>traum.watch: ready"
    assert formatter.format(_record(logging.WARNING, "slow")) == "<4>traum.watch: slow"
    assert formatter.format(_record(logging.DEBUG, "tick")) == "<7>traum.watch: tick"


def test_every_traceback_line_keeps_the_error_priority() -> None:
    try:
        raise ValueError("bad kit")
    except ValueError:
        text = JournalFormatter(debug=True).format(
            _record(logging.ERROR, "failed", sys.exc_info()))
    lines = text.splitlines()
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: bad kit"


def test_without_debug_an_exception_is_one_line() -> None:
    try:
        raise KeyError("stem")
    except KeyError:
        record = _record(logging.ERROR, "render failed for %s", sys.exc_info())
        record.args = ("song.prompt",)
        text = JournalFormatter().format(record)
    assert text == ("<3>traum.watch: render failed for song.prompt: KeyError: 'stem' "
                    "(traum run --debug logs the traceback)")


def test_without_debug_a_traum_error_keeps_its_own_line() -> None:
    try:
        raise StoreError("library disk full (0 MB free) at /srv/library: free space")
    except StoreError as exc:
        record = _record(logging.ERROR, "ingest paused: %s", sys.exc_info())
        record.args = (exc,)
        text = JournalFormatter().format(record)
    assert text == ("<3>traum.watch: ingest paused: library disk full (0 MB free) at "
                    "/srv/library: free space")
