"""The real daemon writes each prompt's exports: ``render.exports`` from config.toml, or the
prompt's own ``export:`` line."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 300.0  # seconds the daemon gets for the kit and both renders on a busy machine


def wait_for(check: Callable[[], bool], what: str, log: Path) -> None:
    """Poll `check` until it holds; fail naming `what` (with the daemon's log) at the
    deadline. Only bounds the wait: nothing here asserts how fast the daemon is."""
    end = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"waited in vain for {what}; daemon log:\n"
                                 f"{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.2)


def test_the_daemon_writes_the_configured_exports_or_the_prompts_own(tmp_path, kit_folder,
                                                                       seed_library):
    inbox, requests = tmp_path / "inbox", tmp_path / "requests"
    library = seed_library(tmp_path / "library")
    requests.mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\ninbox = "{inbox}"\nlibrary = "{library}"\nrequests = "{requests}"\n'
        f'rules = "{ROOT / "rules"}"\n[ingest]\nsettle_seconds = 0.5\n'
        '[render]\nexports = ["wav", "png", "midi"]\n[daemon]\nrescan_seconds = 2.0\n')
    shutil.copytree(kit_folder, inbox / kit_folder.name)
    log = tmp_path / "daemon.log"
    with open(log, "wb") as stderr:
        daemon = subprocess.Popen([sys.executable, "-m", "daemon", "--config", str(config),
                                   "run"], stderr=stderr, stdout=subprocess.DEVNULL,
                                  cwd=tmp_path)
    try:
        wait_for(lambda: not (inbox / kit_folder.name).exists(), "the kit to be ingested",
                 log)
        (requests / "plain.prompt").write_text("driving techno 128 bpm 20 seconds\n")
        (requests / "own.prompt").write_text("driving techno 128 bpm 20 seconds\n"
                                             "export: dawproject\n")
        wait_for(lambda: all((requests / f"{name}.json").exists() or
                             (requests / f"{name}.error.txt").exists()
                             for name in ("plain", "own")), "both renders", log)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    assert sorted(path.name for path in requests.iterdir()) == [
        "own.dawproject", "own.json", "own.prompt", "own.wav",
        "plain.json", "plain.mid", "plain.png", "plain.prompt", "plain.wav"]
    own = json.loads((requests / "own.json").read_text(encoding="utf-8"))
    plain = json.loads((requests / "plain.json").read_text(encoding="utf-8"))
    assert "dawproject: own.dawproject" in " ".join(own["notes"])
    assert own["plan"]["seed"] == plain["plan"]["seed"]  # the line chose outputs, not music
