"""The ingest pipeline end to end through the CLI and the engine: stems stored with their
analysis, duplicates, junk, quarantine of bad files and unsafe archives, and resume after
SIGKILL at many points."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.config import load_config
from daemon.service.processes import descendants
from daemon.store import queries
from daemon.synth.kit import synthesize_kit, write_kit_folder, write_kit_zip
from daemon.work import Engine

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def make_config(seed_library):
    """Write a config for a library in tmp_path that already has a trained classifier."""

    def make(tmp_path: Path, workers: int = 1) -> Path:
        seed_library(tmp_path / "library")
        return write_config(tmp_path, workers)

    return make


def write_config(tmp_path: Path, workers: int) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n[ingest]\nworkers = {workers}\n')
    return path


def traum(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=config.parent)


@pytest.fixture(scope="module")
def samples():
    return synthesize_kit(bpm=126.0, key="D minor", seed=3, bars=2)


def test_ingest_zip_lists_every_stem_with_its_analysis(tmp_path, samples, make_config):
    config = make_config(tmp_path)
    kit = write_kit_zip(samples, tmp_path / "inbox" / "Night Kit.zip")
    done = traum(config, "ingest", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)[0]
    assert report["kit"] == "Night Kit" and report["stored"] == len(samples)
    assert not kit.exists(), "the kit leaves the inbox once every file is committed"

    listing = traum(config, "stems", "--json")
    stems = json.loads(listing.stdout)
    truth = {s.name: s for s in samples}
    assert {row["path"] for row in stems} == set(truth)
    for row in stems:
        expected = truth[row["path"]]
        for field in ("id", "kit", "kind", "category", "bpm", "key", "tags", "duration",
                      "lufs", "bpm_confidence", "key_confidence", "category_confidence"):
            assert field in row
        assert row["category"] == expected.category, row["path"]
        assert row["kind"] == expected.kind, row["path"]
        if expected.kind == "loop":
            assert row["bpm"] == pytest.approx(126.0, abs=1.0), row["path"]
        assert Path(row["stored_path"]).is_file()
    missing = traum(config, "ingest", str(tmp_path / "missing.zip"))
    assert missing.returncode == 1 and "missing.zip: missing" in missing.stderr


def test_same_content_again_is_recorded_as_duplicates(tmp_path, samples, make_config):
    config = make_config(tmp_path)
    write_kit_folder(samples[:4], tmp_path / "inbox" / "Kit")
    assert traum(config, "ingest").returncode == 0
    write_kit_folder(samples[:4], tmp_path / "inbox" / "Kit")
    done = traum(config, "ingest", "--json")
    report = json.loads(done.stdout)[0]
    assert report["kit"] == "Kit (2)"
    assert (report["stored"], report["duplicates"]) == (0, 4)
    stems = json.loads(traum(config, "stems", "--json").stdout)
    assert len(stems) == 4


def test_the_same_kit_makes_the_same_library_every_time(tmp_path, samples, make_config):
    """Two analysis workers finish in any order; stems are still stored, and numbered, in
    one order (longest file first), so a seeded render of the same kits is the same."""
    numbered = []
    for run in ("first", "second"):
        config = make_config(tmp_path / run, workers=2)
        write_kit_folder(samples, tmp_path / run / "inbox" / "Kit")
        assert traum(config, "ingest").returncode == 0
        stems = json.loads(traum(config, "stems", "--json").stdout)
        numbered.append({row["path"]: row["id"] for row in stems})
    assert numbered[0] == numbered[1] and len(numbered[0]) == len(samples)
    by_id = sorted(numbered[0], key=numbered[0].get)
    sizes = [(tmp_path / "first" / "library" / "stems" / "Kit" / path).stat().st_size
             for path in by_id]
    assert sizes == sorted(sizes, reverse=True)


def write_bad_files(folder: Path) -> dict[str, str]:
    """Undecodable, truncated, empty, silent and NaN files; returns name → reason word."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Text_Bass.wav").write_text("this is not audio\n" * 50)
    good = np.sin(np.linspace(0, 2000, 44100)).astype(np.float32) * 0.5
    sf.write(folder / "whole.wav", good, 44100)
    data = (folder / "whole.wav").read_bytes()
    (folder / "whole.wav").unlink()
    (folder / "Cut_Lead.wav").write_bytes(data[:30])
    (folder / "Empty_Pad.wav").write_bytes(b"")
    sf.write(folder / "Silent_Atmo.wav", np.zeros(44100, np.float32), 44100)
    nan = good.copy()
    nan[1000:2000] = np.nan
    sf.write(folder / "NaN_Synth.wav", nan, 44100, subtype="FLOAT")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._x.wav").write_bytes(b"junk")
    (folder / "readme.txt").write_text("kit by someone")
    return {"Text_Bass.wav": "undecodable", "Cut_Lead.wav": "", "Empty_Pad.wav": "empty",
            "Silent_Atmo.wav": "silent", "NaN_Synth.wav": "nan"}


def test_bad_files_are_quarantined_with_a_reason_and_junk_is_skipped(tmp_path, samples,
                                                                    make_config):
    config = make_config(tmp_path)
    folder = tmp_path / "inbox" / "Mixed"
    bad = write_bad_files(folder)
    write_kit_folder(samples[:2], folder)
    done = traum(config, "ingest", "--json")
    report = json.loads(done.stdout)[0]
    assert (report["stored"], report["quarantined"]) == (2, len(bad))
    assert report["junk"] >= 3
    quarantine = tmp_path / "library" / "quarantine" / "Mixed"
    for name, word in bad.items():
        assert (quarantine / name).exists(), name
        reason = (quarantine / f"{name}.reason.txt").read_text()
        assert name in reason and word in reason.lower(), reason
    assert not (quarantine / ".DS_Store").exists()
    status = json.loads(traum(config, "status", "--json").stdout)
    assert status["quarantined"] == len(bad) and status["stems"] == 2


def test_unsafe_archive_is_quarantined_whole(tmp_path, samples, make_config):
    config = make_config(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True)
    with zipfile.ZipFile(inbox / "Evil.zip", "w") as archive:
        archive.writestr("ok.wav", b"RIFF")
        archive.writestr("../../escape.wav", b"RIFF")
    done = traum(config, "ingest")
    assert done.returncode == 1
    assert "Evil.zip" in done.stderr
    kept = tmp_path / "library" / "quarantine" / "Evil" / "Evil.zip"
    assert kept.is_file() and "escape" in kept.with_name("Evil.zip.reason.txt").read_text()
    assert not (tmp_path / "escape.wav").exists() and not (tmp_path.parent / "escape.wav").exists()


def wait_gone(pids: set[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def journal(db: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(db) as conn:
        return {rel: (state, attempts) for rel, state, attempts in
                conn.execute("SELECT rel_path, state, attempts FROM ingestitem")}


def test_sigkill_at_many_points_loses_and_duplicates_nothing(tmp_path, make_config):
    samples = synthesize_kit(bpm=132.0, key="E minor", seed=5, bars=2)
    config = make_config(tmp_path, workers=2)
    folder = tmp_path / "inbox" / "Kill Kit"
    bad = write_bad_files(folder)
    write_kit_folder(samples, folder)
    write_kit_folder(samples[:3], folder / "copies")  # same content twice: duplicates
    inputs = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
              if p.is_file() and not p.name.startswith((".", "._")) and p.suffix != ".txt"
              and "__MACOSX" not in p.parts}
    db = tmp_path / "library" / "stems.db"
    finished: dict[str, int] = {}
    for delay in (0.4, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0):
        process = subprocess.Popen([sys.executable, "-m", "daemon", "--config",
                                    str(config), "ingest"],
                                   cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(delay)
        workers = set(descendants(process.pid))
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert wait_gone(workers), f"analysis workers {workers} outlived their parent"
        if db.exists():
            for rel, (state, attempts) in journal(db).items():
                if state in ("analysed", "stored", "quarantined", "duplicate"):
                    finished.setdefault(rel, attempts)
        if not folder.exists():
            break
    final = traum(config, "ingest")
    assert final.returncode == 0, final.stderr

    states = journal(db)
    assert set(states) == inputs
    assert all(state in ("stored", "quarantined", "duplicate") for state, _ in states.values())
    for rel, attempts in finished.items():
        assert states[rel][1] == attempts, f"{rel} was analysed again after it finished"
    library = tmp_path / "library"
    stored = {p.relative_to(library / "stems" / "Kill Kit").as_posix()
              for p in (library / "stems").rglob("*") if p.is_file()}
    quarantined = {p.relative_to(library / "quarantine" / "Kill Kit").as_posix()
                   for p in (library / "quarantine").rglob("*")
                   if p.is_file() and not p.name.endswith(".reason.txt")}
    duplicates = {rel for rel, (state, _) in states.items() if state == "duplicate"}
    assert stored | quarantined | duplicates == inputs
    assert not stored & quarantined and len(duplicates) == 3
    assert quarantined == set(bad)
    assert not list(library.rglob("*.traum-tmp")), "temp files left behind"
    assert not folder.exists()
    with sqlite3.connect(db) as conn:
        count, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT content_hash) FROM stem").fetchone()
    assert count == distinct == len(stored)


def test_engine_reconcile_removes_orphans_and_temp_files(tmp_path, samples, make_config):
    config = load_config(make_config(tmp_path))
    engine = Engine(config)
    stray = config.paths.stems / "Gone Kit" / "orphan.wav"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    temp = config.paths.stems / "Gone Kit" / "half.wav.traum-tmp"
    temp.write_bytes(b"x")
    report = engine.reconcile()
    assert (report.orphans, report.temp_files) == (1, 1)
    assert not stray.exists() and not temp.exists()


def test_classifier_learns_from_the_users_named_stems(tmp_path, samples, make_config):
    from daemon.ingest.classify import CategoryClassifier

    config = load_config(make_config(tmp_path))
    engine = Engine(config)
    base = engine.classifier_path()
    write_kit_folder(samples, config.paths.inbox / "Named")
    report = engine.ingest(config.paths.inbox / "Named")
    engine.close()
    learnt = engine.classifier_path()
    assert learnt != base and learnt.exists()
    assert CategoryClassifier.load(learnt).example_count == report.stored == len(samples)
    # another seed of the same instruments, with names that say nothing
    anonymous = synthesize_kit(bpm=126.0, key="D minor", seed=4, bars=2, names="anonymous")
    write_kit_folder(anonymous, config.paths.inbox / "Anonymous")
    engine.ingest(config.paths.inbox / "Anonymous")
    engine.close()
    truth = {sample.name: sample.category for sample in anonymous}
    stems = [r for r in queries.list_stems(config.paths.library) if r.kit == "Anonymous"]
    assert len(stems) == len(anonymous)
    correct = sum(record.category == truth[record.rel_path] for record in stems)
    assert correct / len(stems) >= 0.8


def test_a_classifier_learnt_on_an_older_corpus_learns_again_on_the_shipped_one(
        tmp_path, samples, make_config):
    """After an upgrade ships a new corpus, the library's classifier (learnt on the old
    one) learns again before the next file is read, keeping what the user's names taught."""
    from daemon.ingest.classify import CategoryClassifier
    from daemon.ingest.corpus import load_corpus

    config = load_config(make_config(tmp_path))
    engine = Engine(config)
    write_kit_folder(samples, config.paths.inbox / "Named")
    engine.ingest(config.paths.inbox / "Named")
    engine.close()
    learnt_path = engine.classifier_path()
    shipped = CategoryClassifier.load(engine._base_classifier())
    corpus = load_corpus()
    older = CategoryClassifier()  # "the last release's corpus": one source fewer
    older.fit(*corpus.rows(corpus.sources != "hydrogen"))
    older.with_examples(corpus.features[:1], corpus.categories[:1].tolist()).save(learnt_path)
    assert not CategoryClassifier.load(learnt_path).learnt_on(shipped)

    upgraded = Engine(config)
    write_kit_folder(samples[:2], config.paths.inbox / "Next")
    upgraded.ingest(config.paths.inbox / "Next")
    upgraded.close()
    relearnt = CategoryClassifier.load(upgraded.classifier_path())
    assert relearnt.learnt_on(shipped)
    assert relearnt.example_count == len(samples)  # the named stems, not the stale example


def test_staging_is_emptied_for_a_renamed_kit(tmp_path, samples, make_config):
    config = make_config(tmp_path)
    write_kit_zip(samples[:3], tmp_path / "inbox" / "Kit.zip")
    assert traum(config, "ingest").returncode == 0
    write_kit_zip(samples[3:6], tmp_path / "inbox" / "Kit.zip")
    report = json.loads(traum(config, "ingest", "--json").stdout)[0]
    assert (report["kit"], report["stored"]) == ("Kit (2)", 3)
    assert list((tmp_path / "library" / "staging").iterdir()) == []
