"""The status file a running daemon publishes for `traum status`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from daemon.folders import read_status_file, status_file, write_status_file


def unused_pid() -> int:
    """A pid no process can have: the kernel never hands out pid_max itself."""
    return int(Path("/proc/sys/kernel/pid_max").read_text())


def test_a_live_daemons_progress_is_read_back(tmp_path):
    progress = {"pid": os.getpid(), "updated_at": time.time(), "ingest": {"queued": 2}}
    write_status_file(tmp_path, progress)
    assert read_status_file(tmp_path) == progress


def test_stale_dead_or_damaged_status_reads_as_no_daemon(tmp_path):
    assert read_status_file(tmp_path) == {}  # none written
    write_status_file(tmp_path, {"pid": os.getpid(), "updated_at": time.time() - 60})
    assert read_status_file(tmp_path, max_age=30) == {}
    write_status_file(tmp_path, {"pid": unused_pid(), "updated_at": time.time()})
    assert read_status_file(tmp_path) == {}
    status_file(tmp_path).write_text(json.dumps({"pid": "x"}))
    assert read_status_file(tmp_path) == {}
