"""The real daemon (``traum --config X run``) on a wall clock the test can turn back.

Usage: ``python tests/clock_daemon.py --config CONFIG run``. SIGUSR1 moves the process's wall
clock (``time.time``, ``time.time_ns``, ``datetime.now``) back by an hour, as an NTP step or
a hand-set clock does; the monotonic clock goes on, as the kernel's does. Files keep the
kernel's real timestamps: a test makes a file look "written before the jump" with
``os.utime``. (libfaketime 0.9.10 cannot do this: with the monotonic clock left alone it
breaks ``time.sleep``.)
"""

from __future__ import annotations

import datetime
import signal
import sys
import time

JUMP_SECONDS = 3600
_offset = [0.0]
_real_time, _real_time_ns = time.time, time.time_ns


def _time() -> float:
    return _real_time() + _offset[0]


def _time_ns() -> int:
    return _real_time_ns() + int(_offset[0] * 1e9)


class _Datetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.fromtimestamp(_time(), tz)

    @classmethod
    def utcnow(cls):
        return datetime.datetime.fromtimestamp(_time(), datetime.timezone.utc).replace(
            tzinfo=None)


def _jump_back(_signum, _frame) -> None:
    _offset[0] -= JUMP_SECONDS
    print(f"clock_daemon: clock moved back by {JUMP_SECONDS} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    time.time, time.time_ns = _time, _time_ns
    datetime.datetime = _Datetime  # before the daemon (and any scheduler) imports it
    signal.signal(signal.SIGUSR1, _jump_back)
    from daemon.cli import main

    sys.exit(main(sys.argv[1:]))
