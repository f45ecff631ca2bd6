"""`traum` as a user runs it: a real subprocess, real exit codes, real output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.render.conform import cache_path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("run", "ingest", "plan", "render", "status", "stems", "search", "demo", "service",
            "gc", "backup", "doctor", "fix", "reanalyse")


def traum(tmp_path: Path, *args: str, config: str | None = None) -> subprocess.CompletedProcess:
    path = tmp_path / "config.toml"
    if not path.exists():
        path.write_text(config or f'[paths]\nrules = "{ROOT / "rules"}"\n')
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_help_lists_every_subcommand(tmp_path):
    done = traum(tmp_path, "--help")
    assert done.returncode == 0
    for command in COMMANDS:
        assert f"    {command} " in done.stdout, command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_documents_itself(tmp_path, command):
    done = traum(tmp_path, command, "--help")
    assert done.returncode == 0 and "usage: traum" in done.stdout


def test_usage_error_exits_2(tmp_path):
    assert traum(tmp_path, "frobnicate").returncode == 2
    assert traum(tmp_path, "plan").returncode == 2


def test_config_typo_exits_3_naming_the_key(tmp_path):
    done = traum(tmp_path, "status", config="[render]\ntarget_lufs = 3\n[ingest]\nworker = 2\n")
    assert done.returncode == 3
    assert "render.target_lufs: must be between -30 and -5 (got 3)" in done.stderr
    assert "ingest.worker: unknown key" in done.stderr


def test_bad_rules_exit_3_naming_the_file(tmp_path):
    rules = tmp_path / "rules"
    (rules / "genres").mkdir(parents=True)
    for name in ("lexicon.toml", "categories.toml", "tags.toml", "patterns.toml"):
        (rules / name).write_text((ROOT / "rules" / name).read_text())
    (rules / "genres" / "polka.toml").write_text("[tempo]\nmin = 200\nmax = 100\nbogus = 1\n")
    done = traum(tmp_path, "plan", "polka 120 bpm", config='[paths]\nrules = "rules"\n')
    assert done.returncode == 3
    assert "polka.toml" in done.stderr


def test_plan_json_is_a_valid_plan(tmp_path):
    from daemon.compose.plan import plan_from_dict

    done = traum(tmp_path, "plan", "aggressiver düsterer Techno 135 bpm", "--seed", "4",
                 "--json")
    assert done.returncode == 0, done.stderr
    plan = plan_from_dict(json.loads(done.stdout))
    assert (plan.genre, plan.bpm, plan.seed) == ("techno", 135.0, 4)
    assert {"aggressive", "dark"} <= set(plan.moods)
    text = traum(tmp_path, "plan", "deep house in F minor, 2 minutes")
    assert text.returncode == 0 and "F minor" in text.stdout


def test_render_with_an_empty_library_fails_clearly(tmp_path):
    done = traum(tmp_path, "render", "techno 130 bpm", "-o", str(tmp_path / "x.wav"))
    assert done.returncode == 1
    assert "no stems" in done.stderr and not (tmp_path / "x.wav").exists()


def test_status_json_has_the_documented_keys(tmp_path):
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "Kit.zip").write_bytes(b"PK")
    (tmp_path / "inbox" / ".DS_Store").write_bytes(b"")
    done = traum(tmp_path, "status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    for key in ("stems", "kits", "by_category", "quarantined", "pending", "last_errors"):
        assert key in status
    assert status["pending"] == {"inbox": ["Kit.zip"], "requests": []}


def test_search_without_query_is_an_error(tmp_path):
    done = traum(tmp_path, "search")
    assert done.returncode == 1 and "QUERY" in done.stderr


def test_gc_prunes_the_conform_cache_to_its_limit(tmp_path):
    cache = tmp_path / "library" / "cache"
    cache.mkdir(parents=True)
    stale = cache / "conform-0123456789abcdef0123.npy"
    entries = [cache_path(cache, (name,)) for name in ("old", "mid", "new")]
    for used_at, path in enumerate([stale, *entries], start=1):
        with open(path, "wb") as handle:
            handle.truncate(8 << 20)  # sparse: 8 MB without writing them
        os.utime(path, (used_at, used_at))
    done = traum(tmp_path, "gc", "--json",
                 config=f'[paths]\nrules = "{ROOT / "rules"}"\n[render]\ncache_max_mb = 16\n')
    assert done.returncode == 0, done.stderr
    assert [(Path(item["path"]).name, item["reason"]) for item in json.loads(done.stdout)] == [
        (stale.name, "stale version"), (entries[0].name, "least recently used")]
    assert sorted(cache.iterdir()) == sorted(entries[1:])
    again = traum(tmp_path, "gc")
    assert again.returncode == 0 and "0 files removed" in again.stdout
