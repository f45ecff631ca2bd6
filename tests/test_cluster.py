"""The cluster end to end: one watcher (`traum run`) and two workers (`traum worker`), each
a real `traum` process on a real PostgreSQL, sharing one library and outbox folder.

Six kits and eight prompts are dropped; one worker is SIGKILLed while it holds the claim of
a kit it is ingesting. Its claim expires, its job is queued again, and the other worker
finishes the kit from the journal: every stem is in the library exactly once, every prompt
has its WAV, the inbox is empty, and no SQLite file was written.

A worker with ``--concurrency 2`` on the render lane renders two prompts at once, each once.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
from test_daemon import REPO, Daemon, kit_files, write_tree

from daemon.cluster.app import build_app, enqueue

KITS = 6
PROMPTS = 8
DEADLINE = 600.0  # generous: two busy cores shared with other test runs; never asserted
SQLITE_MAGIC = b"SQLite format 3\0"


def write_cluster_config(root: Path, url: str) -> Path:
    """A config whose library lives on `url`; claims expire 5 s after the last heartbeat,
    and the watcher rescans every 2 s, so a killed worker's kit is taken over quickly."""
    config = root / "config.toml"
    config.write_text(
        f'[paths]\ninbox = "{root / "inbox"}"\nlibrary = "{root / "library"}"\n'
        f'requests = "{root / "requests"}"\nrules = "{REPO / "rules"}"\n'
        "[ingest]\nworkers = 1\nsettle_seconds = 0.5\n"
        "[daemon]\nrescan_seconds = 2\nstop_timeout = 10\nretries = 1\n"
        'retry_backoff_seconds = 0.2\nlog_level = "INFO"\n'
        f'[cluster]\ndatabase_url = "{url}"\nclaim_seconds = 5\nheartbeat_seconds = 1\n')
    return config


def start(root: Path, config: Path, name: str, *args: str) -> Daemon:
    """A `traum` process (``run`` or ``worker``), started and READY."""
    env = {key: value for key, value in os.environ.items() if key != "WATCHDOG_USEC"}
    process = Daemon([sys.executable, "-m", "daemon", "--config", str(config), *args],
                     env=env, log=root / f"{name}.log")
    process.wait_ready(timeout=120.0)
    return process


def ingest_claims(url: str, workers: dict[int, Daemon]) -> dict[int, str]:
    """PID → the inbox entry on which that worker of `workers` holds a live ingest claim,
    in the middle of its kit: some files of it are stored, others still pending."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT claim.claimed_by, claim.item FROM claim JOIN kit ON kit.source_name = "
            "claim.item AND kit.status = 'ingesting' JOIN ingestitem ON ingestitem.kit_id = "
            "kit.id WHERE claim.lane = 'ingest' AND claim.claimed_by IS NOT NULL AND "
            "claim.claimed_until > extract(epoch FROM now()) GROUP BY 1, 2 HAVING "
            "count(*) FILTER (WHERE ingestitem.state = 'stored') > 0 AND count(*) FILTER "
            "(WHERE ingestitem.state IN ('discovered', 'analysed')) > 0").fetchall()
    claims = {int(holder.rsplit(":", 1)[1]): item for holder, item in rows}
    return {pid: item for pid, item in claims.items() if pid in workers}


def kill_mid_ingest(url: str, workers: dict[int, Daemon], watcher: Daemon) -> str:
    """SIGKILL a worker in the middle of a kit (and drop it from `workers`); return the
    entry it held. The worker is stopped (SIGSTOP) first and killed only if it still
    holds the claim then, so it cannot have finished that kit in between."""
    found: dict[int, str] = {}
    while True:
        found.clear()
        watcher.wait_for(lambda: found.update(ingest_claims(url, workers)) or found,
                         "a worker to hold an ingest claim", DEADLINE)
        pid, item = next(iter(found.items()))
        os.kill(pid, signal.SIGSTOP)
        if ingest_claims(url, workers).get(pid) == item:
            workers.pop(pid).kill()
            return item
        os.kill(pid, signal.SIGCONT)


def stored_hashes(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT content_hash FROM stem")]


def sqlite_files(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                if handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC:
                    found.append(path)
    return found


def test_a_watcher_and_two_workers_survive_a_worker_killed_mid_ingest(
        tmp_path: Path, postgres_url: str) -> None:
    for folder in ("inbox", "library", "requests"):
        (tmp_path / folder).mkdir()
    config = write_cluster_config(tmp_path, postgres_url)
    processes: list[Daemon] = []
    try:
        watcher = start(tmp_path, config, "watcher", "run")
        processes.append(watcher)
        workers = {}
        for name in ("worker-a", "worker-b"):
            worker = start(tmp_path, config, name, "worker", "--lanes", "ingest,render",
                           "--concurrency", "1")
            processes.append(worker)
            workers[worker.proc.pid] = worker

        kits = {f"Kit {index}": kit_files("real", 40 + index) for index in range(KITS)}
        expected = {hashlib.sha256(data).hexdigest() for files in kits.values()
                    for data in files.values()}
        staging = tmp_path / "staging"
        for name, files in kits.items():  # each kit appears in the inbox at once
            write_tree(staging / name, files)
            (staging / name).rename(tmp_path / "inbox" / name)

        # SIGKILL mid-kit: no claim given back, no job finished.
        held = kill_mid_ingest(postgres_url, workers, watcher)
        survivor = next(iter(workers.values()))

        inbox = tmp_path / "inbox"
        survivor.wait_for(lambda: not any(inbox.iterdir()), "the inbox to empty", DEADLINE)
        requests = tmp_path / "requests"
        prompts = [requests / f"track{index}.prompt" for index in range(PROMPTS)]
        for index, prompt in enumerate(prompts):
            prompt.write_text(f"minimal techno {122 + index} bpm 8 bars")
        survivor.wait_for(lambda: all(p.with_suffix(".json").exists() for p in prompts),
                          "eight answers", DEADLINE)

        hashes = stored_hashes(postgres_url)
        assert len(hashes) == len(set(hashes)) == len(expected)  # every stem exactly once
        assert set(hashes) == expected
        stored = [p for p in (tmp_path / "library" / "stems").rglob("*.wav")]
        assert len(stored) == len(expected)
        assert sorted(p.name for p in requests.glob("*.wav")) == sorted(
            p.with_suffix(".wav").name for p in prompts)
        assert not list(requests.glob("*.error.txt"))
        assert not any(inbox.iterdir())
        assert sqlite_files(tmp_path) == []
        assert not (tmp_path / "library" / "stems.db").exists()
        assert f"{held}: ingest done" in survivor.log()  # the survivor took the kit over
        # The watcher says what it does with a prompt or a kit; a worker does it.
        assert "queued track0.prompt for a render worker" in watcher.log()
        assert "rendering track0.prompt" not in watcher.log()  # it queues, a worker renders
        assert "rendering track0.prompt" in survivor.log()
        assert f"queued {held} for an ingest worker" in watcher.log()
        assert "ingesting " not in watcher.log()

        for process in (survivor, watcher):
            code, _ = process.stop(signal.SIGTERM, timeout=60.0)
            assert code == 0, process.log()
    finally:
        for process in processes:
            process.close()


def waiting_on(url: str, holder: psycopg.Connection) -> int:
    """How many sessions of the server at `url` wait for a lock that `holder` holds (asked
    on a connection of its own: a transaction sees the session list as it first read it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE %s = ANY("
                            "pg_blocking_pids(pid))", (holder.info.backend_pid,)).fetchone()[0]


def done_line(prompt: Path) -> str:
    """The worker's line once the job of `prompt` finished (after its claim went back)."""
    return f"traum.worker: {prompt.name}: render done"


def test_a_worker_with_concurrency_two_renders_two_prompts_at_once_each_once(
        tmp_path: Path, postgres_url: str) -> None:
    for folder in ("inbox", "library", "requests"):
        (tmp_path / folder).mkdir()
    config = write_cluster_config(tmp_path, postgres_url)
    write_tree(tmp_path / "inbox" / "Kit", kit_files("real", 60))
    done = subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), "ingest"],
                          capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    prompts = [tmp_path / "requests" / f"track{bpm}.prompt" for bpm in (124, 126)]
    for bpm, prompt in zip((124, 126), prompts):
        prompt.write_text(f"minimal techno {bpm} bpm 8 bars")
    worker = start(tmp_path, config, "worker", "worker", "--lanes", "render",
                   "--concurrency", "2")
    app = build_app(postgres_url)
    try:
        with psycopg.connect(postgres_url) as holder, app.open():
            # A render's last step records it in the render table, which the test holds
            # locked: two renders waiting there at once ran at once (one job at a time
            # would leave one waiting, forever).
            holder.execute("LOCK TABLE render IN SHARE MODE")
            for prompt in prompts:
                assert enqueue(app, "render", prompt.name)
            worker.wait_for(lambda: waiting_on(postgres_url, holder) == 2,
                            "both renders to wait for the render table", DEADLINE)
            holder.rollback()
            for prompt in prompts:
                worker.wait_for(lambda p=prompt: done_line(p) in worker.log(),
                                f"the job of {prompt.name}", DEADLINE)
        log = worker.log()
        for prompt in prompts:  # each rendered once
            assert prompt.with_suffix(".wav").is_file(), log
            assert not prompt.with_suffix(".error.txt").exists()
            assert log.count(f"rendering {prompt.name}") == 1, log
            assert log.count(done_line(prompt)) == 1, log
        with psycopg.connect(postgres_url) as conn:
            recorded = [row[0] for row in conn.execute("SELECT wav_path FROM render")]
            held = conn.execute("SELECT count(*) FROM claim WHERE claimed_by IS NOT NULL"
                                ).fetchone()[0]
        assert sorted(recorded) == [str(p.with_suffix(".wav")) for p in prompts]
        assert held == 0
        code, _ = worker.stop(signal.SIGTERM, timeout=60.0)
        assert code == 0, worker.log()
    finally:
        worker.close()
