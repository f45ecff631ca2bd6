"""Backups of stems.db: online copies, the daily rotation, damaged sources, restore."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from library_helpers import (
    add_kit,
    add_stem,
    fill_library,
    garble_header,
    make_library,
    scribble,
    stem_count,
    truncate,
    writing,
)

from daemon.errors import StoreError
from daemon.store.backup import (
    backup_folder,
    database_problems,
    list_backups,
    prune_backups,
    restore_backup,
    take_backup,
    take_daily_backup,
    take_library_backup,
)

ROOT = Path(__file__).resolve().parents[1]
NOON = datetime(2025, 3, 14, 12, 0, 0, tzinfo=timezone.utc)


def _traum(root: Path, *args: str) -> subprocess.CompletedProcess:
    config = root / "config.toml"
    if not config.exists():
        config.write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n\n[daemon]\nbackups = 2\n')
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd=root)


def test_backup_is_a_sound_single_file_with_every_committed_row(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    fill_library(paths, stems=50)
    dest = take_backup(paths.database, tmp_path / "copies" / "one.db")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["one.db"]  # no -wal, no temp
    assert database_problems(dest) == []
    assert stem_count(dest) == 50
    with writing(dest) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_backup_is_online_and_sees_only_committed_work(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    fill_library(paths, stems=20)
    writer = sqlite3.connect(paths.database)
    try:
        writer.execute("DELETE FROM ingestitem")
        writer.execute("DELETE FROM stem")  # uncommitted while the backup runs
        dest = take_backup(paths.database, tmp_path / "during.db")
    finally:
        writer.rollback()
        writer.close()
    assert stem_count(dest) == 20


def test_backup_while_another_thread_writes_is_consistent(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    kit = add_kit(paths, "Live Kit")
    stop = threading.Event()

    def keep_writing() -> None:
        number = 0
        while not stop.is_set():
            add_stem(paths, kit, "Live Kit", f"s{number}.wav")
            number += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        copies = [take_backup(paths.database, tmp_path / f"live{n}.db") for n in range(5)]
    finally:
        stop.set()
        writer.join()
    for copy in copies:
        assert database_problems(copy) == []
        with writing(copy) as db:  # every stem row came with its journal row
            stems, items = db.execute("SELECT (SELECT count(*) FROM stem), "
                                      "(SELECT count(*) FROM ingestitem)").fetchone()
        assert stems == items


@pytest.mark.parametrize("damage", [truncate, scribble, garble_header])
def test_a_damaged_database_is_never_backed_up(tmp_path: Path, damage) -> None:
    paths = make_library(tmp_path)
    fill_library(paths)
    good = take_library_backup(paths.library, keep=3, now=NOON)
    damage(paths.database)
    with pytest.raises(StoreError, match=r"stems.db: damaged, not backed up .*traum doctor"):
        take_library_backup(paths.library, keep=1, now=NOON + timedelta(days=1))
    assert list_backups(paths.library) == [good]  # the good copy survives, no temp left
    assert sorted(p.name for p in backup_folder(paths.library).iterdir()) == [good.name]


def test_rotation_keeps_the_newest(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    days = [NOON + timedelta(days=n) for n in range(5)]
    taken = [take_library_backup(paths.library, keep=3, now=day) for day in days]
    assert taken[-1].name == "stems-20250318-120000.db"
    assert list_backups(paths.library) == taken[:1:-1]
    (backup_folder(paths.library) / "by-hand.db").write_bytes(b"")
    assert prune_backups(paths.library, keep=1) == taken[3:1:-1]
    assert (backup_folder(paths.library) / "by-hand.db").exists()  # not the rotation's


def test_daily_backup_once_a_day(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    first = take_daily_backup(paths.library, keep=7, now=NOON)
    assert first is not None
    assert take_daily_backup(paths.library, keep=7, now=NOON + timedelta(hours=11)) is None
    later = take_daily_backup(paths.library, keep=7, now=NOON + timedelta(hours=12))
    assert later is not None and list_backups(paths.library) == [later, first]


def test_a_failed_write_leaves_no_partial_backup(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    with pytest.raises(StoreError, match="cannot write the backup"):
        take_backup(paths.database, blocked / "copy.db")
    with pytest.raises(StoreError, match="no library database"):
        take_backup(tmp_path / "absent.db", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize("damage", [truncate, scribble, garble_header])
def test_restore_replaces_a_damaged_database_and_keeps_it(tmp_path: Path, damage) -> None:
    paths = make_library(tmp_path)
    fill_library(paths, stems=120)
    backup = take_library_backup(paths.library, keep=3, now=NOON)
    damage(paths.database)
    wal = paths.database.with_name("stems.db-wal")
    wal.write_bytes(os.urandom(512))  # a stale WAL must not be replayed into the restored file
    restored = restore_backup(paths.database, library=paths.library,
                              now=NOON + timedelta(days=1))
    assert restored.backup == backup
    assert restored.kept == paths.library / "stems.db.damaged-20250315-120000"
    assert database_problems(restored.kept)  # kept as it was, damage and all
    assert (paths.library / "stems.db.damaged-20250315-120000-wal").exists()
    assert not wal.exists()
    assert database_problems(paths.database) == []
    assert stem_count(paths.database) == 120


def test_restore_skips_damaged_backups_and_checks_a_given_one(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    fill_library(paths, stems=100)
    older = take_library_backup(paths.library, keep=3, now=NOON)
    newer = take_library_backup(paths.library, keep=3, now=NOON + timedelta(days=1))
    scribble(newer)
    assert restore_backup(paths.database, library=paths.library).backup == older
    with pytest.raises(StoreError, match="not a sound backup"):
        restore_backup(paths.database, library=paths.library, backup=newer)
    scribble(older)
    with pytest.raises(StoreError, match="every backup in .* is damaged"):
        restore_backup(paths.database, library=paths.library)


def test_restore_without_backups_changes_nothing(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    before = paths.database.read_bytes()
    with pytest.raises(StoreError, match="no backup in .*nothing to restore"):
        restore_backup(paths.database, library=paths.library)
    assert paths.database.read_bytes() == before
    assert sorted(p.name for p in paths.library.iterdir() if p.name.startswith("stems.db")) \
        == ["stems.db"]


def test_cli_backup_rotates_and_writes_to_a_given_path(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    fill_library(paths, stems=10)
    for _ in range(3):
        done = _traum(tmp_path, "backup")
        assert done.returncode == 0, done.stderr
    assert "kept in" in done.stdout
    assert 1 <= len(list_backups(paths.library)) <= 2  # daemon.backups = 2 (names per second)
    done = _traum(tmp_path, "backup", str(tmp_path))
    assert done.returncode == 0, done.stderr
    copy = Path(done.stdout.split(" to ")[1].split(",")[0])
    assert copy.parent == tmp_path and copy.name.startswith("stems-")
    assert stem_count(copy) == 10
    done = _traum(tmp_path, "backup", str(tmp_path / "named.db"))
    assert done.returncode == 0 and stem_count(tmp_path / "named.db") == 10


def test_cli_backup_of_a_damaged_database_is_one_line(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    fill_library(paths)
    scribble(paths.database)
    done = _traum(tmp_path, "backup")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "stems.db: damaged, not backed up" in done.stderr


def test_restore_when_the_database_file_is_gone(tmp_path: Path) -> None:
    paths = make_library(tmp_path)
    fill_library(paths, stems=5)
    backup = take_library_backup(paths.library, keep=3, now=NOON)
    paths.database.unlink()
    restored = restore_backup(paths.database, library=paths.library, backup=backup)
    assert (restored.backup, restored.kept) == (backup, None)
    assert stem_count(paths.database) == 5
