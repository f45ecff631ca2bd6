"""The ANN snapshot behind `--like` (`daemon.vectorsearch`, `daemon.embed.ann`) on a real
SQLite library with a lowered threshold: built, persisted, reloaded; the tail, deletions,
reused ids and models handled; equal to the exact scan; damaged files rebuilt; refreshed by
the engine (at the real threshold) and used by ``traum search --like``. One refresh at a
time, on SQLite and on PostgreSQL: a refresh while another holds the lock does nothing."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from daemon.config import Paths, ensure_folders, load_config
from daemon.embed import ann
from daemon.embed.index import VectorIndex
from daemon.store.db import open_database, open_server
from daemon.store.models import database
from daemon.vectorsearch import (
    ANN_MIN_STEMS,
    ann_folder,
    lock_refreshes,
    nearest_stems,
    refresh_vector_index,
)
from daemon.work import Engine
from tests.library_helpers import add_kit, make_library, writing

ROOT = Path(__file__).resolve().parents[1]
DIM = 12
MODEL, OTHER = "features-v1", "clap:x.pt"
SMALL = {"min_stems": 50, "refresh_tail": 20}  # the thresholds, lowered for small libraries


def unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


STEM_ROW = ("INSERT INTO stem (kit_id, rel_path, stored_path, content_hash, category, "
            "category_confidence, category_source, kind, bpm_confidence, bpm_source, "
            "key_confidence, key_source, duration, sample_rate, channels, peak_db, rms_db, "
            "crest_db, tags, embedding, embedding_model, added_at) VALUES (?, ?, ?, ?, ?, 1, "
            "'name', 'oneshot', 0, 'none', 0, 'none', 0.5, 44100, 2, -1, -12, 11, '[]', ?, "
            "?, ?)")


def stem_values(kit: int, vector: np.ndarray, model: str, category: str) -> tuple:
    """The values of `STEM_ROW` for a new stem of `kit` holding `vector`."""
    name = os.urandom(8).hex()
    return (kit, f"{name}.wav", f"stems/{name}.wav", name, category,
            np.asarray(vector, np.float32).tobytes(), model, time.time())


def add_stems(paths: Paths, vectors: np.ndarray, *, model: str = MODEL,
              category: str = "kick") -> list[int]:
    """Stem rows with `vectors` embedded by `model`, in one transaction; their ids."""
    kit = add_kit(paths, f"Kit {time.monotonic_ns()}")
    with writing(paths.database) as db:
        return [db.execute(STEM_ROW, stem_values(kit, vector, model, category)).lastrowid
                for vector in vectors]


def add_server_stems(url: str, vectors: np.ndarray) -> list[int]:
    """`add_stems` on the PostgreSQL library at `url`."""
    with psycopg.connect(url) as db:
        kit = db.execute("INSERT INTO kit (name, source_kind, status, added_at) VALUES "
                         "(%s, 'folder', 'complete', 0) RETURNING id",
                         (f"Kit {time.monotonic_ns()}",)).fetchone()[0]
        return [db.execute(STEM_ROW.replace("?", "%s") + " RETURNING id",
                           stem_values(kit, vector, MODEL, "kick")).fetchone()[0]
                for vector in vectors]


def delete_stems(paths: Paths, ids: list[int]) -> None:
    with writing(paths.database) as db:
        db.executemany("DELETE FROM stem WHERE id = ?", [(i,) for i in ids])


def exact(paths: Paths, query: np.ndarray, k: int, *, exclude=(), model: str = MODEL,
          category: str | None = None) -> list[int]:
    """Ids of the exact top `k`, by a scan of every row of `model` (and `category`)."""
    with writing(paths.database) as db:
        rows = db.execute("SELECT id, embedding FROM stem WHERE embedding_model = ? AND "
                          "(? IS NULL OR category = ?)", (model, category, category)).fetchall()
    index = VectorIndex(DIM)
    index.add([row[0] for row in rows], np.stack([np.frombuffer(row[1], np.float32)
                                                  for row in rows]))
    return [stem_id for stem_id, _ in index.nearest(query, k, exclude=exclude)]


def found(paths: Paths, query: np.ndarray, k: int = 10, **options) -> list[int]:
    return [record.id for record, _ in nearest_stems(paths, query, MODEL, k, **options)]


@pytest.fixture
def library(tmp_path) -> Paths:
    paths = make_library(tmp_path)
    open_database(paths.database)
    return paths


def index_files(paths: Paths) -> list[str]:
    return sorted(p.name for p in ann_folder(paths).glob("*.usearch"))


def test_below_the_threshold_no_index_is_written_and_the_scan_is_exact(library):
    add_stems(library, unit_rows(40, seed=1))
    assert refresh_vector_index(library, MODEL, **SMALL) == 0
    assert index_files(library) == []
    query = unit_rows(1, seed=2)[0]
    assert found(library, query) == exact(library, query, 10)


def test_snapshot_is_built_persisted_reloaded_and_matches_the_exact_scan(library):
    ids = add_stems(library, unit_rows(300, seed=3))
    assert refresh_vector_index(library, MODEL, **SMALL) == 300
    assert len(index_files(library)) == 1
    snapshot = ann.read_snapshot(ann_folder(library), MODEL)
    assert len(snapshot) == 300 and snapshot.info.through_id == ids[-1]
    ann._cache.clear()  # a new process: read from disk again
    for seed in range(4, 9):
        query = unit_rows(1, seed=seed)[0]
        assert found(library, query, exclude=(ids[0],)) == exact(library, query, 10,
                                                                  exclude=(ids[0],))
    assert refresh_vector_index(library, MODEL, **SMALL) == 0  # nothing new: untouched


def test_stems_added_after_the_snapshot_are_found_and_refreshed_in(library):
    add_stems(library, unit_rows(200, seed=10))
    refresh_vector_index(library, MODEL, **SMALL)
    late = unit_rows(5, seed=11)
    late_ids = add_stems(library, late)
    assert found(library, late[2], k=1) == [late_ids[2]]
    assert refresh_vector_index(library, MODEL, **SMALL) == 0  # tail of 5 < 20
    late_ids += add_stems(library, unit_rows(30, seed=12))
    assert refresh_vector_index(library, MODEL, **SMALL) == 35
    assert ann.read_snapshot(ann_folder(library), MODEL).info.through_id == late_ids[-1]
    assert found(library, late[2], k=1) == [late_ids[2]]


def test_deleted_stems_are_never_returned(library):
    vectors = unit_rows(200, seed=20)
    ids = add_stems(library, vectors)
    refresh_vector_index(library, MODEL, **SMALL)
    query = vectors[7]
    gone = exact(library, query, 15)
    delete_stems(library, gone)
    result = found(library, query, k=10)
    assert not set(result) & set(gone) and len(result) == 10
    assert result == exact(library, query, 10)
    assert set(ids) - set(gone) >= set(result)


def test_ids_reused_after_the_newest_stems_were_deleted_get_their_new_vectors(library):
    vectors = unit_rows(200, seed=30)
    ids = add_stems(library, vectors)
    refresh_vector_index(library, MODEL, **SMALL)
    delete_stems(library, ids[-3:])
    fresh = -vectors[-1:]  # far from the old vector of the id SQLite hands out again
    reused = add_stems(library, fresh)
    assert reused == [ids[-3]]  # SQLite reuses the ids of deleted top rows
    assert found(library, fresh[0], k=1) == reused
    assert ids[-1] not in found(library, vectors[-1], k=5)
    refresh_vector_index(library, MODEL, **SMALL)  # drops the stale ids from the snapshot
    assert found(library, fresh[0], k=1) == reused


def test_models_are_never_mixed(library):
    vectors = unit_rows(200, seed=40)
    ids = add_stems(library, vectors)
    refresh_vector_index(library, MODEL, **SMALL)
    other = unit_rows(100, seed=41)  # a backend switch re-embeds the first half
    with writing(library.database) as db:
        db.executemany("UPDATE stem SET embedding = ?, embedding_model = ? WHERE id = ?",
                       [(v.tobytes(), OTHER, i) for v, i in zip(other, ids[:100])])
    refresh_vector_index(library, OTHER, **SMALL)
    assert len(index_files(library)) == 2  # one snapshot per model
    assert set(found(library, other[0], k=20)) <= set(ids[100:])
    assert set(found(library, vectors[0], k=20)) <= set(ids[100:])
    in_other = [r.id for r, _ in nearest_stems(library, vectors[150], OTHER, 20)]
    assert set(in_other) <= set(ids[:100]) and len(in_other) == 20
    assert [r.id for r, _ in nearest_stems(library, other[5], OTHER, 1)] == [ids[5]]


def test_a_category_filter_finds_a_rare_category(library):
    add_stems(library, unit_rows(300, seed=50))
    snares = add_stems(library, unit_rows(3, seed=51), category="snare")
    add_stems(library, unit_rows(300, seed=52))
    refresh_vector_index(library, MODEL, **SMALL)
    query = unit_rows(1, seed=53)[0]
    assert found(library, query, k=5, category="snare") == exact(library, query, 5,
                                                                 category="snare")
    assert sorted(found(library, query, k=5, category="snare")) == snares


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_a_damaged_or_foreign_index_is_logged_searched_exactly_and_rebuilt(
        library, caplog, damage):
    vectors = unit_rows(120, seed=60)
    add_stems(library, vectors)
    refresh_vector_index(library, MODEL, **SMALL)
    [name] = index_files(library)
    path = ann_folder(library) / name
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not an index" * 100)
    else:  # a valid usearch file of another dimension under the right name
        ann.build_index(np.arange(5), unit_rows(5, seed=61)[:, :8]).save(str(path))
    os.utime(ann.pointer_path(ann_folder(library), MODEL), ns=(1, 1))  # readers reload
    with caplog.at_level(logging.WARNING, logger="traum.vectorsearch"):
        assert found(library, vectors[3]) == exact(library, vectors[3], 10)
    assert "vector index" in caplog.text and name in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="traum.vectorsearch"):
        assert refresh_vector_index(library, MODEL, **SMALL) == 120
    assert "exact search until the next refresh rebuilds it" in caplog.text
    assert "120 vectors added" in caplog.text
    assert found(library, vectors[3]) == exact(library, vectors[3], 10)


def test_only_the_current_and_previous_index_files_are_kept(library):
    add_stems(library, unit_rows(60, seed=70))
    for seed in range(71, 75):
        refresh_vector_index(library, MODEL, **SMALL)
        add_stems(library, unit_rows(25, seed=seed))
    assert len(index_files(library)) == 2
    current = ann.read_snapshot(ann_folder(library), MODEL).info.file
    assert current in index_files(library)


def test_traum_search_like_uses_the_snapshot_and_the_tail(tmp_path):
    paths = make_library(tmp_path)
    open_database(paths.database)
    vectors = unit_rows(150, seed=80)
    ids = add_stems(paths, vectors)
    refresh_vector_index(paths, MODEL, **SMALL)
    ids += add_stems(paths, vectors[:3] * 0.5 + unit_rows(3, seed=81) * 0.1)  # the tail
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')

    def search(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "daemon", "--config", str(config),
                               "search", *args], capture_output=True, text=True, timeout=120)

    done = search("--like", str(ids[1]), "--limit", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = [row["id"] for row in json.loads(done.stdout)]
    assert result == exact(paths, vectors[1], 5, exclude=(ids[1],)) and ids[151] in result
    assert "vector index" not in done.stderr  # the snapshot answered, no fallback
    done = search("--like", "99999")
    assert done.returncode == 1 and "no stem with that id" in done.stderr


def test_the_engine_refreshes_the_index_when_it_catches_up_embeddings(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')
    engine = Engine(load_config(config))
    paths = engine.config.paths
    add_stems(paths, unit_rows(ANN_MIN_STEMS - 1, seed=90))
    engine.catch_up_embeddings()  # what an ingest and the daemon's start run
    assert index_files(paths) == []  # below the threshold
    add_stems(paths, unit_rows(1, seed=91))
    engine.catch_up_embeddings()
    assert len(ann.read_snapshot(ann_folder(paths), MODEL)) == ANN_MIN_STEMS


# -- one refresh at a time -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def any_library(request, tmp_path) -> Iterator[tuple[Paths, Callable[[np.ndarray], list[int]]]]:
    """A library on stems.db or on a PostgreSQL server, and how to add stems to it."""
    if request.param == "sqlite":
        paths = make_library(tmp_path)
        open_database(paths.database)
        yield paths, lambda vectors: add_stems(paths, vectors)
        return
    url = request.getfixturevalue("postgres_url")
    paths = Paths(inbox=tmp_path / "inbox", library=tmp_path / "library",
                  requests=tmp_path / "requests", rules=tmp_path / "rules")
    ensure_folders(paths)
    db = open_server(url)
    try:
        yield paths, lambda vectors: add_server_stems(url, vectors)
    finally:
        db.close()


@contextlib.contextmanager
def refresh_held_elsewhere(paths: Paths) -> Iterator[None]:
    """Hold the refresh lock of `MODEL` for the block from another thread, with its own
    database connection and lock file handle, as another process would hold it."""
    taken: queue.SimpleQueue = queue.SimpleQueue()
    release = threading.Event()

    def hold() -> None:
        try:
            with lock_refreshes(paths, MODEL) as held:
                taken.put(held)
                release.wait()
        except BaseException as exc:  # reported to the test, which waits for the lock
            taken.put(exc)
        finally:
            database.close()  # this thread's connection

    holder = threading.Thread(target=hold, name="lock-holder")
    holder.start()
    try:
        assert taken.get() is True
        yield
    finally:
        release.set()
        holder.join()


def test_a_refresh_while_another_process_refreshes_returns_at_once_writing_nothing(
        any_library, caplog):
    paths, add = any_library
    add(unit_rows(300, seed=100))
    with refresh_held_elsewhere(paths), caplog.at_level(logging.DEBUG,
                                                        logger="traum.vectorsearch"):
        assert refresh_vector_index(paths, MODEL, **SMALL) == 0
    assert "another process is refreshing it" in caplog.text
    assert index_files(paths) == []
    assert not ann.pointer_path(ann_folder(paths), MODEL).exists()
    assert refresh_vector_index(paths, MODEL, **SMALL) == 300  # the next one catches up


def test_a_refresh_that_fails_gives_the_lock_back(any_library, monkeypatch):
    paths, add = any_library
    add(unit_rows(300, seed=101))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ann, "build_index", full_disk)
    with pytest.raises(OSError, match="No space left"):
        refresh_vector_index(paths, MODEL, **SMALL)
    monkeypatch.undo()
    with refresh_held_elsewhere(paths):  # another connection takes the lock: it is free
        assert refresh_vector_index(paths, MODEL, **SMALL) == 0
    assert refresh_vector_index(paths, MODEL, **SMALL) == 300
