"""A database outage under a running cluster: the watcher's and the worker's lanes pause,
and resume when the server is back; the work queued meanwhile is done.

The test runs a PostgreSQL server of its own (never the shared test server, which other
tests use), stops it under a running `traum run` and `traum worker` and starts it again.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from pg_helpers import start_private_server, stop_server
from test_cluster import DEADLINE, start, write_cluster_config


def heartbeat_of(url: str) -> float:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(heartbeat_at) FROM worker").fetchone()
    return float(row[0] or 0.0)


def lines_with(log: str, text: str) -> list[str]:
    return [line for line in log.splitlines() if text in line]


def test_the_lanes_pause_through_a_database_outage_and_resume(tmp_path: Path) -> None:
    url, folder = start_private_server()
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    try:
        config = write_cluster_config(tmp_path, url)
        watcher = start(tmp_path, config, "watcher", "run")
        worker = start(tmp_path, config, "worker", "worker")
        try:
            stop_server(folder)
            worker.wait_for(lambda: lines_with(worker.log(), "lanes paused"), "the worker's "
                            "pause", DEADLINE)
            paused = lines_with(worker.log(), "lanes paused")[0]
            assert "library database unreachable" in paused and url in paused, paused
            prompt = tmp_path / "requests" / "during.prompt"
            prompt.write_text("driving techno 130 bpm")  # queued once the server is back
            watcher.wait_for(lambda: lines_with(watcher.log(), "render paused"),
                             "the watcher's pause", DEADLINE)
            assert url in lines_with(watcher.log(), "render paused")[0]
            start_private_server(folder, port)
            worker.wait_for(lambda: "lanes resume" in worker.log(), "the resume", DEADLINE)
            resumed = time.time()
            worker.wait_for(lambda: heartbeat_of(url) > resumed, "a fresh heartbeat", DEADLINE)
            # The library has no stems, so the prompt is answered with its error file.
            worker.wait_for(lambda: prompt.with_suffix(".error.txt").exists(),
                            "the prompt answered after the outage", DEADLINE)
            assert "render resumed" in watcher.log()
        finally:
            codes = [worker.stop()[0], watcher.stop()[0]]
        assert codes == [0, 0]
        for process in (worker, watcher):
            assert "Traceback" not in process.log()
            assert "psycopg.pool" not in process.log()  # one pause line, not one per retry
        assert "left behind" not in worker.log()  # its row is removed on the way out
    finally:
        stop_server(folder, remove=True)
