"""The real daemon (``traum --config X run``) with a fault injected at ``open()``, for machines
where a test cannot mount a small tmpfs (no root, or a container without CAP_SYS_ADMIN).

Usage: ``python tests/fault_daemon.py --config CONFIG run``. While the file named by
``$TRAUM_FAULT_FLAG`` exists, every ``open()`` (Python's, ``os.open``, ``tempfile``) that
creates, truncates or appends below ``$TRAUM_FAULT_DIR`` fails with ``OSError(errno
$TRAUM_FAULT_ERRNO)`` naming the file, as a full disk (28) or a read-only one (30) would fail
the engine's own writes. SQLite writes in C and is not reached: database faults need the real tmpfs.
"""

from __future__ import annotations

import os
import sys

_GROWING_FLAGS = os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _grows(mode: object, flags: object) -> bool:
    """An open that creates, truncates or appends: on a full disk only those need blocks
    (rewriting a file's existing bytes in place, mode "r+", still works there)."""
    if isinstance(mode, str):
        return any(letter in mode for letter in "wax")
    return isinstance(flags, int) and bool(flags & _GROWING_FLAGS)


def install() -> None:
    folder = os.path.abspath(os.environ["TRAUM_FAULT_DIR"]) + os.sep
    flag = os.environ["TRAUM_FAULT_FLAG"]
    number = int(os.environ.get("TRAUM_FAULT_ERRNO", "28"))

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(folder) and _grows(args[1], args[2]) and os.path.exists(flag):
            raise OSError(number, os.strerror(number), path)

    sys.addaudithook(hook)  # an audit hook cannot be removed: the whole process is faulty


if __name__ == "__main__":
    install()
    from daemon.cli import main

    sys.exit(main(sys.argv[1:]))
