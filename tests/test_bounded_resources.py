"""Bounded folders: quarantine and error files expire after ``daemon.keep_days`` (listed by
`traum status`, removed by `traum gc`), and a running daemon keeps the conform cache within
``render.cache_max_mb`` and its daily backups to ``daemon.backups``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_daemon import REPO, Workspace, answered, kit_files, names, write_tree

from daemon.config import Paths, ensure_folders
from daemon.folders import expired_leftovers, remove_leftovers
from daemon.render.conform import cache_path

DAY = 86400.0


def aged(path: Path, days: float, text: str = "x") -> Path:
    """Write `path` and date it `days` ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))
    return path


def quarantined(paths: Paths, rel: str, days: float) -> Path:
    """A quarantined file and its reason, written `days` ago (the file itself older still:
    a quarantined kit keeps its own times)."""
    entry = aged(paths.quarantine / rel, days + 100, "audio")
    aged(entry.with_name(entry.name + ".reason.txt"), days, f"{rel}: corrupt\n")
    return entry


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    made = Paths(inbox=tmp_path / "inbox", library=tmp_path / "library",
                 requests=tmp_path / "requests", rules=REPO / "rules")
    ensure_folders(made)
    return made


def test_expired_leftovers_are_old_reasons_and_error_files(paths: Paths) -> None:
    old_file = quarantined(paths, "Kit/Loops/broken.wav", 45)
    old_kit = quarantined(paths, "Zipped/Zipped.zip", 31)
    fresh = quarantined(paths, "Kit/Loops/recent.wav", 2)
    aged(paths.quarantine / "Kit" / "by-hand.wav", 400)  # no reason: not the engine's
    old_error = aged(paths.requests / "song.error.txt", 60)
    aged(paths.requests / "new.error.txt", 1)
    aged(paths.requests / "song.prompt", 90)
    found = expired_leftovers(paths, keep_days=30)
    assert [item.path for item in found] == [old_error, old_file, old_kit]  # oldest first
    assert [round(item.age_days(time.time())) for item in found] == [60, 45, 31]
    removed = remove_leftovers(paths, found)
    assert removed == found
    assert not (paths.quarantine / "Zipped").exists()  # emptied kit folder removed
    assert sorted(p.name for p in (paths.quarantine / "Kit").rglob("*")) == sorted(
        ["Loops", "recent.wav", "recent.wav.reason.txt", "by-hand.wav"])
    assert fresh.exists() and not old_error.exists()
    assert (paths.requests / "song.prompt").exists()  # the prompt itself is the user's


def traum(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon", "--config",
                           str(root / "config.toml"), *args],
                          capture_output=True, text=True, timeout=300)


def test_status_lists_and_gc_removes_expired_files(paths: Paths, tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        f'[paths]\ninbox = "{paths.inbox}"\nlibrary = "{paths.library}"\n'
        f'requests = "{paths.requests}"\nrules = "{paths.rules}"\n[daemon]\nkeep_days = 10\n')
    old = quarantined(paths, "Kit/old.wav", 12)
    error = aged(paths.requests / "bad.error.txt", 11)
    keep = quarantined(paths, "Kit/young.wav", 9)
    status = traum(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert ("2 quarantine and error files are older than daemon.keep_days: traum gc removes "
            "them") in status.stdout
    listed = json.loads(traum(tmp_path, "status", "--json").stdout)["expired"]
    assert [(item["path"], round(item["days"])) for item in listed] == [
        (str(old), 12), (str(error), 11)]
    gc = traum(tmp_path, "gc", "--json")
    assert gc.returncode == 0, gc.stderr
    assert [(item["path"], item["reason"]) for item in json.loads(gc.stdout)] == [
        (str(old), "expired quarantine"), (str(error), "expired error file")]
    assert not old.exists() and not error.exists() and keep.exists()
    again = traum(tmp_path, "gc")
    assert "quarantine and error files: 0 older than 10 days removed" in again.stdout
    assert "older than daemon.keep_days" not in traum(tmp_path, "status").stdout


def test_running_daemon_bounds_its_cache_and_backups(tmp_path: Path) -> None:
    space = Workspace(tmp_path, "real")
    config = space.config.read_text().replace('log_level = "DEBUG"\n',
                                              'log_level = "DEBUG"\nbackups = 2\n')
    space.config.write_text(config + "[render]\ncache_max_mb = 16\n")
    backups = space.library / "backups"
    backups.mkdir(parents=True)
    for day in (1, 2, 3):  # an older rotation: only the newest daemon.backups stay
        (backups / f"stems-2020010{day}-000000.db").write_bytes(b"")
    cache = space.library / "cache"
    cache.mkdir(parents=True)
    stale = cache / "conform-0123456789abcdef0123.npy"  # a conform version before ours
    old = [cache_path(cache, ("prefilled", number)) for number in range(3)]
    for used_at, path in enumerate([stale, *old], start=1):
        with open(path, "wb") as handle:
            handle.truncate(8 << 20)  # sparse: 8 MB each without writing them
        os.utime(path, (used_at, used_at))
    try:
        daemon = space.start()
        write_tree(space.inbox / "Basics", kit_files("real", 41))
        daemon.wait_for(lambda: space.stored() == names(kit_files("real", 41)),
                        "the kit stored", 300)
        started = time.time()
        prompt = space.requests / "cached.prompt"
        prompt.write_text("driving techno 130 bpm")
        daemon.wait_for(lambda: answered(prompt) and "conform cache: pruned" in daemon.log(),
                        "a render and the cache pruned", 300)
        daemon.wait_for(lambda: "daily backup: " in daemon.log(), "the daily backup")
    finally:
        for running in space.daemons:
            running.close()
    files = {path: path.stat() for path in cache.glob("conform-*.npy")}
    assert sum(info.st_size for info in files.values()) <= 16 << 20
    fresh = [path for path, info in files.items() if info.st_mtime >= started - 1]
    assert fresh, "the render cached its conformed stems"
    assert not stale.exists()
    kept = [path for path in old if path.exists()]
    assert kept == old[len(old) - len(kept):]  # least recently used went first
    assert len(kept) < len(old)
    rotation = sorted(path.name for path in backups.iterdir())
    assert len(rotation) == 2 and rotation[0] == "stems-20200103-000000.db"  # and today's
