"""`daemon.faults`: which exceptions are faults of the machine, and how they are worded.

The scenarios with real full, read-only and locked disks run against the daemon in
tests/test_faults.py; these check the classification itself, case by case.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest
from library_helpers import garble_header, make_library

from daemon import faults
from daemon.config import Paths
from daemon.errors import IngestError, RenderError, StorageFault
from daemon.faults import storage_fault, translate_faults
from daemon.store.db import open_database


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return make_library(tmp_path)


def os_error(number: int, path: Path | None = None) -> OSError:
    return OSError(number, os.strerror(number), *([str(path)] if path else []))


def test_a_full_disk_names_the_folder_and_its_free_space(paths: Paths) -> None:
    fault = storage_fault(os_error(errno.ENOSPC, paths.stems / "Kit" / "kick.wav"), paths)
    free = faults.free_bytes(paths.library) // faults.MB
    assert (fault.what, fault.where, fault.cause, fault.scope) == (
        f"library disk full ({free} MB free)", paths.library, "disk-full", "lane")
    assert str(fault) == (f"library disk full ({free} MB free) at {paths.library}: free space "
                          "on that disk, then try again (the daemon retries by itself)")


def test_the_cache_is_named_before_the_library_around_it(paths: Paths) -> None:
    fault = storage_fault(os_error(errno.EDQUOT, paths.cache / "conform-x.npy"), paths)
    assert fault.what.startswith("cache over quota (") and fault.where == paths.cache
    assert "lower render.cache_max_mb" in fault.advice


def test_a_full_disk_without_a_file_name_is_the_fullest_written_folder(
        paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    free = {paths.requests: 3 * faults.MB, paths.cache: 900 * faults.MB,
            paths.library: 900 * faults.MB}
    monkeypatch.setattr(faults, "free_bytes", lambda folder: free[folder])
    wrapped = RenderError("song.wav: cannot write the wav output")
    wrapped.__cause__ = os_error(errno.ENOSPC)  # a write() on an open file names no file
    fault = storage_fault(wrapped, paths, writes=("outbox", "cache", "library"))
    assert fault.what == "outbox disk full (3 MB free)" and fault.where == paths.requests


def test_an_unreadable_kit_file_holds_only_that_kit(paths: Paths) -> None:
    fault = storage_fault(os_error(errno.EACCES, paths.inbox / "My Kit" / "a.wav"), paths)
    assert (fault.what, fault.scope, fault.cause) == (
        "inbox permission denied on My Kit/a.wav", "item", "permission")
    assert f"chmod -R a+rX '{paths.inbox / 'My Kit'}'" in fault.advice


def test_a_forbidden_library_pauses_the_lane(paths: Paths) -> None:
    fault = storage_fault(os_error(errno.EACCES, paths.stems / "Kit"), paths)
    assert (fault.what, fault.scope) == ("library permission denied", "lane")


def test_a_read_only_folder_says_how_to_remount_it(paths: Paths) -> None:
    fault = storage_fault(os_error(errno.EROFS, paths.library / "stems.db-wal"), paths)
    assert fault.what == "library read-only" and fault.cause == "read-only"
    assert f"mount -o remount,rw {faults.mount_point(paths.library)}" in fault.advice


def test_a_stem_deleted_by_hand_points_to_doctor(paths: Paths) -> None:
    fault = storage_fault(os_error(errno.ENOENT, paths.stems / "Kit" / "kick.wav"), paths)
    assert (fault.what, fault.scope, fault.cause) == (
        "stored stem stems/Kit/kick.wav deleted by hand", "item", "missing")
    assert "traum doctor --fix" in fault.advice


def test_input_errors_and_bugs_are_no_faults(paths: Paths) -> None:
    bad_input = IngestError(paths.inbox / "a.wav", "undecodable", "cannot read")
    bad_input.__cause__ = os_error(errno.EACCES, paths.inbox / "a.wav")
    assert storage_fault(bad_input, paths) is None  # already settled as the input's problem
    assert storage_fault(KeyError("stem"), paths) is None
    assert storage_fault(os_error(errno.ENOENT, paths.inbox / "gone.wav"), paths) is None


def test_a_locked_database(paths: Paths) -> None:
    holder = sqlite3.connect(paths.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    writer = sqlite3.connect(paths.database, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            writer.execute("INSERT INTO kit (name, source_kind, status, added_at) "
                           "VALUES ('k', 'folder', 'ingesting', 0)")
    finally:
        writer.close()
        holder.execute("ROLLBACK")
        holder.close()
    fault = storage_fault(caught.value, paths)
    assert fault.what == "stems.db locked by another process" and fault.cause == "locked"
    assert fault.where == paths.database


def test_a_failed_commit_found_behind_the_failed_rollback(paths: Paths) -> None:
    """SQLite rolls a transaction back itself when its COMMIT hits a full disk; peewee's own
    ROLLBACK then fails, and that error (with the first as its context) is what surfaces."""
    full = sqlite3.OperationalError("database or disk is full")
    try:
        try:
            raise full
        except sqlite3.OperationalError:
            raise sqlite3.OperationalError("cannot rollback - no transaction is active")  # noqa: B904
    except sqlite3.OperationalError as surfaced:
        fault = storage_fault(surfaced, paths)
    assert fault.what.startswith("library disk full (") and fault.where == paths.library


def test_a_damaged_database_is_refused_with_doctor_advice(paths: Paths) -> None:
    garble_header(paths.database)
    with pytest.raises(StorageFault) as caught:
        open_database(paths.database)
    fault = caught.value
    assert fault.what == "stems.db damaged (file is not a database)"
    assert "traum doctor --restore" in fault.advice and fault.cause == "damaged"


def test_translate_faults_chains_and_leaves_the_rest(paths: Paths) -> None:
    with pytest.raises(StorageFault) as caught, \
            translate_faults(paths, writes=("library",)):
        raise os_error(errno.ENOSPC, paths.staging / "Kit" / "a.wav")
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(KeyError), translate_faults(paths, writes=("library",)):
        raise KeyError("not a fault")


@pytest.mark.parametrize(("number", "expected"), [
    (errno.ENOSPC, "cache disk full"),
    (errno.EROFS, "cache read-only"),
    (errno.EACCES, "cache permission denied"),
    (errno.EIO, "cache not written"),
])
def test_a_cache_write_fault_is_one_line_saying_renders_go_on(tmp_path: Path, number: int,
                                                                expected: str) -> None:
    line = faults.cache_fault_line(os_error(number, tmp_path / "x.npy"), tmp_path)
    assert line.startswith(expected) and str(tmp_path) in line
    assert "renders go on, slower" in line and "\n" not in line
