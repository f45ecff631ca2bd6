"""A database outage while a worker runs: its lanes pause, and resume when the server is back.

The test runs a PostgreSQL server of its own (never the shared test server, which other
tests use), stops it under a running `traum worker` and starts it again.
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


def test_a_worker_pauses_through_a_database_outage_and_resumes(tmp_path: Path) -> None:
    url, folder = start_private_server()
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    try:
        config = write_cluster_config(tmp_path, url)
        worker = start(tmp_path, config, "worker", "worker", "--lanes", "render")
        try:
            stop_server(folder)
            worker.wait_for(lambda: "lanes paused" in worker.log(), "the pause", DEADLINE)
            paused = next(line for line in worker.log().splitlines() if "lanes paused" in line)
            assert "library database unreachable" in paused and url in paused, paused
            start_private_server(folder, port)
            worker.wait_for(lambda: "lanes resume" in worker.log(), "the resume", DEADLINE)
            resumed = time.time()
            worker.wait_for(lambda: heartbeat_of(url) > resumed, "a fresh heartbeat", DEADLINE)
        finally:
            code, _ = worker.stop()
        assert code == 0
        assert "Traceback" not in worker.log()
        assert "left behind" not in worker.log()  # its row is removed on the way out
    finally:
        stop_server(folder, remove=True)
