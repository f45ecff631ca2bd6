"""The cluster's bookkeeping on a real PostgreSQL: claims, a task delivered twice, a stale
claim taken over, the worker's start checks, and what `traum status` shows.

The end-to-end run with real processes is tests/test_cluster.py; here the claim logic is
driven directly, with a stand-in for the engine that counts what it is asked to do.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from daemon.cluster.app import build_app, enqueue, install_schema
from daemon.cluster.dispatch import ClusterWork
from daemon.cluster.tasks import Runner
from daemon.config import Config, load_config
from daemon.errors import PlanError
from daemon.service.daemon import lane_policy
from daemon.service.renders import Renders
from daemon.status import collect_status
from daemon.store.cluster import (
    WorkerRecord,
    claim_holder,
    register_worker,
    release_claim,
    take_claim,
)
from daemon.store.db import open_store
from daemon.store.schema import LATEST

REPO = Path(__file__).resolve().parents[1]


def write_config(root: Path, url: str) -> Path:
    """``root/config.toml`` with the three folders under `root` and the library on `url`."""
    for folder in ("inbox", "library", "requests"):
        (root / folder).mkdir(exist_ok=True)
    path = root / "config.toml"
    path.write_text(f'[paths]\ninbox = "inbox"\nlibrary = "library"\nrequests = "requests"\n'
                    f'rules = "{REPO / "rules"}"\n'
                    "[daemon]\nretries = 1\nretry_backoff_seconds = 0.01\n"
                    f'[cluster]\ndatabase_url = "{url}"\nclaim_seconds = 120\n'
                    "heartbeat_seconds = 1\n")
    return path


def cluster_config(root: Path, url: str) -> Config:
    return load_config(write_config(root, url))


def traum(config: Config | Path, *args: str) -> subprocess.CompletedProcess:
    path = config if isinstance(config, Path) else config.source
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=120)


class CountingWork:
    """The engine's part a task drives: renders write a WAV and a JSON, ingests take the
    entry out of the inbox; every call is counted. `fail` makes renders raise it."""

    def __init__(self, config: Config, fail: Exception | None = None) -> None:
        self.config = config
        self.fail = fail
        self.calls: list[str] = []

    def render(self, prompt: Path) -> None:
        self.calls.append(f"render {prompt.name}")
        if self.fail is not None:
            raise self.fail
        for suffix in (".wav", ".json"):
            prompt.with_suffix(suffix).write_bytes(b"out")

    def ingest(self, entry: Path) -> None:
        self.calls.append(f"ingest {entry.name}")
        entry.rename(self.config.paths.library / entry.name)


def runner(work: CountingWork, holder: str = "host:1") -> Runner:
    return Runner(work, holder=holder, claim_seconds=5.0, policy=lane_policy(work.config))


@pytest.fixture
def config(tmp_path: Path, postgres_url: str) -> Config:
    config = cluster_config(tmp_path, postgres_url)
    open_store(config)
    return config


def test_a_claim_is_held_by_one_worker_until_it_expires(config: Config) -> None:
    first = take_claim("ingest", "Kit", holder="a:1", seconds=5, now=1000.0)
    assert first is not None
    assert take_claim("ingest", "Kit", holder="b:2", seconds=5, now=1004.0) is None
    assert claim_holder("ingest", "Kit") == ("a:1", 1005.0)
    # a:1 was killed: nothing renews its claim, and after it expires b:2 takes it over.
    second = take_claim("ingest", "Kit", holder="b:2", seconds=5, now=1006.0)
    assert second is not None
    assert not release_claim(first)  # the killed worker's claim is no longer its own
    assert release_claim(second, done_mark="m")
    assert claim_holder("ingest", "Kit") is None
    assert take_claim("ingest", "Kit", holder="a:1", seconds=5).done_mark == "m"


def test_a_render_delivered_twice_renders_once(config: Config) -> None:
    work = CountingWork(config)
    prompt = config.paths.requests / "song.prompt"
    prompt.write_text("minimal techno 124 bpm")
    assert runner(work).render("song.prompt") == "song.prompt: render done"
    # The clock jumped back: the outputs look older than the prompt. The timestamps alone
    # would render again; the claim's mark says this text was rendered.
    for suffix in (".wav", ".json"):
        os.utime(prompt.with_suffix(suffix), (1e9, 1e9))
    assert runner(work, "other:2").render("song.prompt") == "song.prompt: render done already"
    assert work.calls == ["render song.prompt"]
    prompt.write_text("minimal techno 125 bpm")  # an edit is new work
    os.utime(prompt, (2e9, 2e9))
    runner(work).render("song.prompt")
    assert work.calls == ["render song.prompt"] * 2


def test_a_prompt_held_by_a_live_worker_is_left_to_it(config: Config) -> None:
    work = CountingWork(config)
    (config.paths.requests / "song.prompt").write_text("techno")
    assert take_claim("render", "song.prompt", holder="busy:7", seconds=60) is not None
    assert runner(work).render("song.prompt") == "song.prompt: render held by busy:7"
    assert work.calls == []


def test_an_ingest_delivered_twice_ingests_once(config: Config) -> None:
    work = CountingWork(config)
    (config.paths.inbox / "Kit").mkdir()
    assert runner(work).ingest("Kit") == "Kit: ingest done"
    assert runner(work, "other:2").ingest("Kit").startswith("Kit: not in the inbox")
    assert work.calls == ["ingest Kit"]


def test_a_bad_prompt_is_answered_once_and_not_tried_again(config: Config) -> None:
    work = CountingWork(config, fail=PlanError("empty prompt"))
    prompt = config.paths.requests / "bad.prompt"
    prompt.write_text(" ")
    assert runner(work).render("bad.prompt") == "bad.prompt: render failed: empty prompt"
    assert "empty prompt" in prompt.with_suffix(".error.txt").read_text()
    prompt.with_suffix(".error.txt").unlink()
    assert runner(work).render("bad.prompt") == "bad.prompt: render done already"
    assert work.calls == ["render bad.prompt"]  # a PlanError is final: no retry either


def test_the_watcher_says_it_queues_a_prompt_not_that_it_renders_it(
        config: Config, caplog: pytest.LogCaptureFixture) -> None:
    prompt = config.paths.requests / "song.prompt"
    prompt.write_text("minimal techno 124 bpm")
    work = ClusterWork(config)
    try:
        work.reconcile()
        renders = Renders(work.render, announce=False)  # the watcher's render lane
        with caplog.at_level(logging.INFO):
            renders.handle(prompt)
            renders.handle(prompt)  # a rescan before a worker took it
    finally:
        work.close()
    assert "queued song.prompt for a render worker" in caplog.messages
    assert "song.prompt already waiting for a render worker" in caplog.messages
    assert not [line for line in caplog.messages if "rendering" in line]


def test_status_lists_the_workers_and_the_queue_depth(config: Config, tmp_path: Path) -> None:
    url = config.cluster.database_url
    install_schema(url)
    assert not install_schema(url)  # a second start finds it installed
    app = build_app(url)
    with app.open():
        assert enqueue(app, "ingest", "Kit A")
        assert not enqueue(app, "ingest", "Kit A")  # one waiting job per item
        assert enqueue(app, "ingest", "Kit B")
        assert enqueue(app, "render", "song.prompt")
    now = time.time()
    for name, beat in (("alive:1", now), ("gone:2", now - 600)):
        register_worker(WorkerRecord(name=name, host=name.split(":")[0], pid=1,
                                     lanes=("ingest", "render"), schema_version=LATEST,
                                     started_at=now - 100, heartbeat_at=beat))
    cluster = collect_status(config)["cluster"]
    assert cluster["queues"] == {"ingest": {"todo": 2, "doing": 0},
                                 "render": {"todo": 1, "doing": 0}}
    assert [(w["name"], w["alive"]) for w in cluster["workers"]] == [("alive:1", True),
                                                                      ("gone:2", False)]
    done = traum(config, "status")
    assert done.returncode == 0, done.stderr
    assert "queue ingest: 2 waiting, 0 running" in done.stdout
    assert "queue render: 1 waiting, 0 running" in done.stdout
    assert re.search(r"alive:1 on alive: ingest,render, heartbeat \d+ s ago \(alive\)",
                     done.stdout), done.stdout
    assert re.search(r"gone:2 on gone: ingest,render, heartbeat \d+ s ago \(stale\)",
                     done.stdout), done.stdout


def test_a_worker_refuses_a_library_of_another_schema_version(config: Config) -> None:
    url = config.cluster.database_url
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM schema_version WHERE version = %s", (LATEST,))
    done = traum(config, "worker")
    assert done.returncode == 1
    line = f"the library is at schema v{LATEST - 1}, this worker runs v{LATEST}: refused"
    assert done.stderr.count("\n") == 1 and line in done.stderr, done.stderr
    with psycopg.connect(url) as conn:  # the worker did not bring it forward
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == \
            LATEST - 1


def test_an_unreachable_server_is_one_line_with_the_password_masked(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = cluster_config(tmp_path, f"postgresql://ada:s3cret@127.0.0.1:{port}/library")
    done = traum(config, "worker")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"postgresql://ada:***@127.0.0.1:{port}/library" in done.stderr
    assert "s3cret" not in done.stderr and "Traceback" not in done.stderr



def test_a_url_that_is_not_postgresql_is_a_config_error(tmp_path: Path) -> None:
    done = traum(write_config(tmp_path, "mysql://ada:s3cret@host/library"), "worker")
    assert done.returncode == 3
    assert "mysql://ada:***@host/library is not a postgresql:// URL" in done.stderr
    assert "s3cret" not in done.stderr


def test_without_a_cluster_nothing_of_it_is_imported(tmp_path: Path) -> None:
    """One machine: the CLI, `traum status` and the daemon's choice of work load neither
    procrastinate (nor its connection pool) nor the cluster package. (psycopg itself is
    imported by peewee whenever it is installed.)"""
    script = (
        "import sys\n"
        "from daemon.cli import main\n"
        "from daemon.commands.service import open_work\n"
        "from daemon.config import load_config\n"
        "import daemon.service.daemon\n"
        "assert main(['status', '--json']) == 0\n"
        "work = open_work(load_config(None))\n"
        "assert type(work).__name__ == 'Engine'\n"
        "work.close()\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('procrastinate',"
        " 'psycopg_pool') or m.startswith('daemon.cluster')]\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n")
    env = {key: value for key, value in os.environ.items() if key != "TRAUM_CONFIG"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "library" / "stems.db").is_file()  # the embedded SQLite, as before
