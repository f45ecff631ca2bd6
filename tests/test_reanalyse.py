"""Re-analysis: killed mid-way and run again, every stem is updated exactly once with its
id, embedding and corrections kept; after an upgrade the daemon does it by itself."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from kit_helpers import make_engine
from test_ingest_pipeline import wait_gone

from daemon.config import load_config
from daemon.ingest.analyse import ANALYSIS_VERSION
from daemon.service.processes import descendants
from daemon.store import queries, revisions
from daemon.synth import synthesize_kit, write_kit_folder

# A SQLite trigger logs each stem written with a new analysis version: "updated once" is
# then a fact of the database, whatever process wrote it.
_LOG_UPDATES = """
CREATE TABLE reanalysed (stem_id INTEGER NOT NULL, version INTEGER NOT NULL);
CREATE TRIGGER log_reanalysis AFTER UPDATE OF analysis_version ON stem
WHEN NEW.analysis_version > 0
BEGIN INSERT INTO reanalysed VALUES (NEW.id, NEW.analysis_version); END;
"""


def library_of(tmp_path: Path, kits: int, *, workers: int) -> Path:
    """`kits` anonymous kits ingested into a fresh library; returns its config file."""
    engine = make_engine(tmp_path)
    for seed in range(kits):
        samples = synthesize_kit(bpm=118.0 + 6 * seed, key="E minor", seed=seed + 60,
                                 names="anonymous")
        write_kit_folder(samples, engine.config.paths.inbox / f"Kit {seed}")
        engine.ingest(engine.config.paths.inbox / f"Kit {seed}")
    engine.close()
    config = tmp_path / "config.toml"
    config.write_text(config.read_text().replace("workers = 1", f"workers = {workers}"))
    return config


def sql(database: Path, statement: str, *args) -> list[tuple]:
    with sqlite3.connect(database, timeout=30) as db:
        return db.execute(statement, args).fetchall()


def traum(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(config), *args],
                            cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_killed_reanalysis_resumes_and_updates_every_stem_once(tmp_path):
    config = library_of(tmp_path, 3, workers=2)
    paths = load_config(config).paths
    before = {stem.id: stem for stem in queries.list_stems(paths.library)}
    corrected = next(stem for stem in before.values() if stem.kind == "loop")
    revisions.set_correction(corrected.id, "bpm", 99.0)
    with sqlite3.connect(paths.database) as db:
        db.executescript(_LOG_UPDATES)

    run = traum(config, "reanalyse", "--all")
    deadline = time.monotonic() + 300
    while not sql(paths.database, "SELECT count(*) FROM reanalysed")[0][0] >= 3:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "no stem was re-analysed"
        time.sleep(0.02)
    workers = set(descendants(run.pid))
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    done_at_kill = sql(paths.database, "SELECT count(*) FROM reanalysed")[0][0]
    assert 3 <= done_at_kill < len(before), "the run was not killed mid-way"
    assert workers, "the analysis ran in a pool"
    assert wait_gone(workers), f"analysis workers {workers} outlived their parent"

    again = traum(config, "reanalyse", "--all")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "finished an interrupted run first" in out
    counts = dict(sql(paths.database,
                      "SELECT stem_id, count(*) FROM reanalysed GROUP BY stem_id"))
    assert counts == {stem_id: 1 for stem_id in before}
    after = {stem.id: stem for stem in queries.list_stems(paths.library)}
    assert after.keys() == before.keys()
    assert all(stem.analysis_version == ANALYSIS_VERSION for stem in after.values())
    assert all((stem.embedding == before[stem.id].embedding).all() for stem in after.values())
    assert (after[corrected.id].bpm, after[corrected.id].overrides) == (99.0, ("bpm",))


def test_the_daemon_reanalyses_after_an_upgrade(tmp_path):
    config = library_of(tmp_path, 1, workers=1)
    database = load_config(config).paths.database
    # As a library written by the previous analysis version looks to this one.
    sql(database, "UPDATE stem SET analysis_version = ?", ANALYSIS_VERSION - 1)
    daemon = traum(config, "run")
    try:
        deadline = time.monotonic() + 300
        while sql(database, "SELECT count(*) FROM stem WHERE analysis_version < ?",
                  ANALYSIS_VERSION)[0][0]:
            assert daemon.poll() is None, daemon.communicate()
            assert time.monotonic() < deadline, "the daemon did not re-analyse"
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "re-analysis:" in err
