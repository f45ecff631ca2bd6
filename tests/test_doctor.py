"""`traum doctor`: integrity of stems.db, rows against files, --fix, and --restore."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from library_helpers import (
    add_kit,
    add_stem,
    fill_library,
    garble_header,
    make_library,
    scribble,
    truncate,
    writing,
)

from daemon.errors import StoreError
from daemon.fsutil import TEMP_SUFFIX
from daemon.store import backup
from daemon.store.backup import list_backups
from daemon.store.doctor import describe, examine_library, repair_library

ROOT = Path(__file__).resolve().parents[1]


def _traum(root: Path, *args: str) -> subprocess.CompletedProcess:
    config = root / "config.toml"
    if not config.exists():
        config.write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=300, cwd=root)


def _small_library(root: Path):
    paths = make_library(root)
    kit = add_kit(paths, "Kit")
    ids = [add_stem(paths, kit, "Kit", f"Drums/hit_{n}.wav") for n in range(3)]
    return paths, ids


def test_a_sound_library_is_healthy(tmp_path: Path) -> None:
    paths, _ = _small_library(tmp_path)
    (paths.stems / "Kit" / f".x.wav.123{TEMP_SUFFIX}").write_bytes(b"")  # start-up sweeps it
    checkup = examine_library(paths)
    assert checkup.healthy and checkup.stems == 3
    assert describe(checkup) == [f"{paths.database}: sound; 3 stems, every file in place"]


def test_a_new_library_without_a_database_is_healthy(tmp_path: Path) -> None:
    paths, _ = _small_library(tmp_path)
    paths.database.unlink()
    shutil.rmtree(paths.stems)
    assert examine_library(paths).healthy
    stray = paths.stems / "Kit" / "a.wav"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    checkup = examine_library(paths)  # files, but nothing that describes them
    assert checkup.damaged and "run traum doctor --restore" in describe(checkup)[0]


def test_a_file_deleted_by_hand_is_reported_and_its_row_removed(tmp_path: Path) -> None:
    paths, ids = _small_library(tmp_path)
    gone = paths.stems / "Kit" / "Drums" / "hit_1.wav"
    gone.unlink()
    checkup = examine_library(paths)
    assert not checkup.healthy
    assert describe(checkup) == [f"{gone}: file missing (stem {ids[1]}); --fix removes the row"]
    repairs = repair_library(paths, checkup)
    assert [found.stem_id for found in repairs.removed] == [ids[1]]
    assert examine_library(paths).healthy
    with writing(paths.database) as db:
        stems = [row[0] for row in db.execute("SELECT id FROM stem ORDER BY id")]
        item = db.execute("SELECT state, stem_id, reason FROM ingestitem "
                          "WHERE rel_path = 'Drums/hit_1.wav'").fetchone()
    assert stems == [ids[0], ids[2]]
    assert item[:2] == ("skipped", None)  # a re-drop of the kit ingests the file again
    assert "deleted by hand" in item[2]


def test_a_file_put_back_before_the_fix_keeps_its_row(tmp_path: Path) -> None:
    paths, ids = _small_library(tmp_path)
    kept = paths.stems / "Kit" / "Drums" / "hit_0.wav"
    aside = tmp_path / "aside.wav"
    kept.rename(aside)
    checkup = examine_library(paths)
    aside.rename(kept)
    assert repair_library(paths, checkup).removed == ()
    assert examine_library(paths).stems == 3


def test_a_file_without_a_row_goes_to_quarantine_with_its_reason(tmp_path: Path) -> None:
    paths, _ = _small_library(tmp_path)
    stray = paths.stems / "Kit" / "Drums" / "stray.wav"
    stray.write_bytes(b"stray audio")
    (paths.quarantine / "Kit" / "Drums").mkdir(parents=True)
    (paths.quarantine / "Kit" / "Drums" / "stray.wav").write_bytes(b"an earlier one")
    checkup = examine_library(paths)
    assert describe(checkup) == [f"{stray}: no row in the database; --fix moves it to "
                                 "quarantine/"]
    repairs = repair_library(paths, checkup)
    dest = paths.quarantine / "Kit" / "Drums" / "stray (2).wav"
    assert repairs.quarantined == (("stems/Kit/Drums/stray.wav", dest),)
    assert dest.read_bytes() == b"stray audio" and not stray.exists()
    assert (paths.quarantine / "Kit" / "Drums" / "stray.wav").read_bytes() == b"an earlier one"
    reason = dest.with_name("stray (2).wav.reason.txt").read_text()
    assert reason.startswith("stems/Kit/Drums/stray.wav: no row in stems.db")
    assert "inbox" in reason
    assert examine_library(paths).healthy


def test_files_of_a_kit_still_ingesting_are_left_alone(tmp_path: Path) -> None:
    paths, _ = _small_library(tmp_path)
    add_kit(paths, "Arriving", status="ingesting")
    copied = paths.stems / "Arriving" / "kick.wav"  # copied, its row not yet committed
    copied.parent.mkdir(parents=True)
    copied.write_bytes(b"x")
    assert examine_library(paths).healthy


@pytest.mark.parametrize("damage", [truncate, scribble, garble_header])
def test_a_damaged_database_is_one_line_pointing_to_restore(tmp_path: Path, damage) -> None:
    paths = make_library(tmp_path)
    fill_library(paths)
    damage(paths.database)
    checkup = examine_library(paths)
    assert checkup.damaged and not checkup.missing and not checkup.orphans
    lines = describe(checkup)
    assert len(lines) == 1
    assert lines[0].startswith(f"{paths.database}: damaged (")
    assert lines[0].endswith("); run traum doctor --restore")
    with pytest.raises(StoreError, match="restore first"):
        repair_library(paths, checkup)


def test_cli_exit_codes_and_fix(tmp_path: Path) -> None:
    paths, ids = _small_library(tmp_path)
    done = _traum(tmp_path, "doctor")
    assert (done.returncode, done.stderr) == (0, "")
    (paths.stems / "Kit" / "Drums" / "hit_2.wav").unlink()
    done = _traum(tmp_path, "doctor")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{paths.stems / 'Kit' / 'Drums' / 'hit_2.wav'}: file missing (stem {ids[2]}); "
        "--fix removes the row"]
    done = _traum(tmp_path, "doctor", "--fix")
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1].endswith("sound; 2 stems, every file in place")


def test_cli_restore_is_refused_while_the_daemon_runs(tmp_path: Path) -> None:
    paths, _ = _small_library(tmp_path)
    _traum(tmp_path, "backup")
    status = {"pid": os.getpid(), "updated_at": time.time()}  # a live process, fresh status
    (paths.library / "daemon-status.json").write_text(json.dumps(status))
    done = _traum(tmp_path, "doctor", "--restore")
    assert done.returncode == 1
    assert f"the daemon (pid {os.getpid()}) has {paths.database} open: stop it first" \
        in done.stderr
    assert not list(paths.library.glob("stems.db.damaged-*"))


def test_damage_backup_and_restore_with_a_real_ingest(tmp_path: Path, kit_folder: Path,
                                                      seed_library) -> None:
    """The whole cycle a user goes through, each step a `traum` process."""
    paths = make_library(tmp_path)
    seed_library(paths.library)
    done = _traum(tmp_path, "ingest", str(kit_folder))
    assert done.returncode == 0, done.stderr
    assert _traum(tmp_path, "doctor").returncode == 0
    assert _traum(tmp_path, "backup").returncode == 0
    stored = sorted(paths.stems.rglob("*.wav"))
    stored[0].unlink()  # deleted by hand after the backup

    truncate(paths.database)
    done = _traum(tmp_path, "stems")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    done = _traum(tmp_path, "doctor")
    assert done.returncode == 1 and done.stdout.count("\n") == 1
    assert f"{paths.database}: damaged (" in done.stdout and "traum doctor --restore" in \
        done.stdout

    done = _traum(tmp_path, "doctor", "--restore")
    backup = list_backups(paths.library)[0]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"restored {paths.database} from {backup}; the replaced file "
                               f"is kept as {paths.library / 'stems.db.damaged-'}")
    assert len(lines) == 2
    assert lines[1].startswith(f"{stored[0]}: file missing (stem ")
    assert lines[1].endswith("); --fix removes the row")
    assert done.returncode == 1  # the hand-deleted file is still gone
    assert _traum(tmp_path, "doctor", "--fix").returncode == 0
    done = _traum(tmp_path, "stems", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == len(stored) - 1


def test_a_locked_database_is_not_called_damaged(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    paths, _ = _small_library(tmp_path)
    monkeypatch.setattr(backup, "LOCK_WAIT", 0.2)
    holder = sqlite3.connect(paths.database)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("DELETE FROM ingestitem")
        with pytest.raises(StoreError, match="cannot check the library database: .*locked"):
            examine_library(paths)
    finally:
        holder.rollback()
        holder.close()
    assert examine_library(paths).healthy
