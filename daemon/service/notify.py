"""Talking to systemd without libsystemd: sd_notify(3) messages and journald-style logs.

sd_notify sends one datagram to ``$NOTIFY_SOCKET`` per message.

systemd passes a socket path in ``$NOTIFY_SOCKET`` to ``Type=notify`` services. A leading
``@`` names a Linux abstract-namespace socket (the ``@`` stands for a NUL byte). Messages
are newline-separated ``KEY=value`` assignments such as ``READY=1`` or
``STATUS=ingest 1 running``. Outside systemd the variable is unset and nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from daemon.errors import TraumError

log = logging.getLogger("traum.notify")
_work_log = logging.getLogger("traum.daemon")  # where the lanes' failures are reported

_SEND_TIMEOUT = 1.0  # seconds; systemd reads at once, so only a stuck receiver waits this


def notify(message: str) -> bool:
    """Send `message` to the service manager; False when there is none or sending failed.

    Never raises: a supervisor that went away must not take the daemon down with it.
    """
    address = _socket_address(os.environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # A receiver that stops reading fills its queue (net.unix.max_dgram_qlen, often
            # 10 datagrams) and a blocking send would hang the heartbeat and the shutdown.
            sock.settimeout(_SEND_TIMEOUT)
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.debug("cannot notify %r: %s", address, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or None when systemd expects none.

    systemd sets ``$WATCHDOG_USEC`` (the timeout) and ``$WATCHDOG_PID`` (the process it
    applies to; a child that inherited the environment must not ping). sd_watchdog_enabled(3)
    recommends pinging at half the timeout.
    """
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


def _socket_address(value: str) -> str | None:
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    if value:  # e.g. "vsock:..." for VMs, which this small sender does not speak
        log.debug("unsupported NOTIFY_SOCKET %r", value)
    return None


class JournalFormatter(logging.Formatter):
    """``<6>traum.watch: message``: the priority prefix journald reads from stderr
    (sd-daemon(3)); every line of a traceback carries it, so none is logged as info.

    Without `debug` no traceback is written: a record that carries one (``log.exception``)
    becomes one line ending in the exception's type and message.
    """

    _PRIORITIES = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4,
                   logging.ERROR: 3, logging.CRITICAL: 2}

    def __init__(self, *, debug: bool = False) -> None:
        super().__init__("%(name)s: %(message)s")
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not self.debug:
            record = _one_line(record)
        prefix = f"<{self._PRIORITIES.get(record.levelno, 6)}>"
        lines = super().format(record).splitlines() or [""]
        return "\n".join(prefix + line for line in lines)


def _one_line(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of `record` without its traceback; the exception is named at the end unless it
    is a `TraumError`, whose message the line already carries."""
    exc = record.exc_info[1]
    if isinstance(exc, TraumError):
        return logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
    text = str(exc).strip().splitlines()
    summary = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None,
                                  "args": None, "msg": f"{record.getMessage()}: {summary} "
                                  "(traum run --debug logs the traceback)"})


def configure_logging(level: str, *, debug: bool = False) -> None:
    """Send all logging to stderr in journald style at `level`, replacing any handler set
    up before (the CLI's); safe to call again. Tracebacks only with `debug`."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h.formatter, JournalFormatter)),
                   None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        root.handlers = [handler]
    handler.setFormatter(JournalFormatter(debug=debug))
    root.setLevel(level)
    logging.captureWarnings(True)  # library warnings get a priority prefix too
    # Even at DEBUG, numba's compiler passes and every raw inotify event are noise.
    for noisy in ("numba", "watchdog"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


def log_failure(verb: str, path: Path, exc: BaseException) -> None:
    """One line for a work item that failed for good; a bug's traceback only with --debug."""
    if isinstance(exc, TraumError):
        _work_log.error("%s failed for %s: %s", verb, path, exc)
    else:  # a bug: the traceback is logged with --debug (see `configure_logging`)
        _work_log.error("%s failed for %s", verb, path, exc_info=exc)
