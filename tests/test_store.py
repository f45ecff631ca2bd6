"""The library database: creation, pragmas, forward migration without loss, queries; on
SQLite and on PostgreSQL (`store_helpers`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from peewee import Database, SqliteDatabase
from store_helpers import KINDS, Backend, fresh_backend

from daemon.errors import StoreError
from daemon.store import queries, revisions, schema
from daemon.store.db import open_database
from daemon.store.models import MODELS, Kit, Stem


@pytest.fixture(params=KINDS)
def backend(request, tmp_path) -> Backend:
    with fresh_backend(request.param, tmp_path) as made:
        yield made


def stem_columns(**overrides) -> dict:
    """Analysis column values of a bass loop, as `AnalysisResult.to_columns` gives them."""
    values = dict(category="bass", category_confidence=0.9, category_source="filename",
                  kind="loop", bpm=128.0, bpm_confidence=1.0, bpm_source="filename",
                  musical_key="A minor", key_confidence=0.8, key_source="audio",
                  duration=7.5, sample_rate=44100, channels=2, lufs=-12.0, peak_db=-1.0,
                  rms_db=-15.0, crest_db=14.0, tags=("dark",), descriptors={"flux": 0.5},
                  features=np.arange(4, dtype=np.float32), embedding=None,
                  embedding_model=None, analysis_version=1)
    values.update(overrides)
    return values


def add_stem(kit, name: str, **overrides) -> int:
    queries.record_items(kit, [name])
    item = next(i for i in queries.pending_items(kit) if i.rel_path == name)
    return queries.commit_stem(item, stem_columns(**overrides), stored_path=f"stems/K/{name}",
                               content_hash=name)


def write_release(backend: Backend | Path, version: int) -> Database:
    """A database as release `version` wrote it, with one kit (`backend`: a SQLite path)."""
    old = backend.raw() if isinstance(backend, Backend) else SqliteDatabase(str(backend))
    schema.migrate(old, target=version)
    old.execute_sql("INSERT INTO kit (name, source_kind, status, added_at) "
                    "VALUES ('Old Kit', 'zip', 'complete', 1.0)")
    return old


def test_new_database_uses_wal_and_foreign_keys(tmp_path):
    db = open_database(tmp_path / "lib" / "stems.db")
    assert db.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute_sql("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert db.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert schema.read_version(db) == schema.LATEST


def test_a_write_transaction_holds_the_write_lock_from_its_start(tmp_path):
    # A deferred transaction that read before another connection committed could not
    # upgrade to a write in WAL: "database is locked" at once, whatever the busy timeout.
    db = open_database(tmp_path / "lib" / "stems.db")
    other = sqlite3.connect(tmp_path / "lib" / "stems.db", timeout=0, isolation_level=None)
    with revisions.transaction():
        db.execute_sql("SELECT COUNT(*) FROM kit").fetchone()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("INSERT INTO kit (name, source_kind, status, added_at) "
                          "VALUES ('Other', 'zip', 'complete', 1.0)")
        db.execute_sql("INSERT INTO kit (name, source_kind, status, added_at) "
                       "VALUES ('Mine', 'zip', 'complete', 1.0)")
    other.execute("INSERT INTO kit (name, source_kind, status, added_at) "
                  "VALUES ('Other', 'zip', 'complete', 1.0)")
    assert [row[0] for row in other.execute("SELECT name FROM kit ORDER BY id")] == [
        "Mine", "Other"]
    other.close()


def table_columns(db: Database, table: str) -> dict[str, bool]:
    """Column → nullable, as the database describes `table`."""
    if isinstance(db, SqliteDatabase):
        return {row[1]: not row[3] and not row[5]
                for row in db.execute_sql(f"PRAGMA table_info({table})")}
    rows = db.execute_sql("SELECT column_name, is_nullable FROM information_schema.columns "
                          "WHERE table_name = %s", (table,))
    return {name: nullable == "YES" for name, nullable in rows}


def test_models_match_the_migrated_schema(backend):
    db = backend.open()
    for model in MODELS:
        table = model._meta.table_name
        # column → nullable, from the migrations and from the model
        fields = {field.column_name: field.null for field in model._meta.sorted_fields}
        assert fields == table_columns(db, table), table


def test_v1_database_is_migrated_without_loss(backend):
    old = write_release(backend, 1)
    old.execute_sql(
        "INSERT INTO stem (kit_id, rel_path, stored_path, content_hash, category, "
        "category_confidence, category_source, kind, bpm, bpm_confidence, bpm_source, "
        "musical_key, key_confidence, key_source, duration, sample_rate, channels, lufs, "
        "peak_db, rms_db, crest_db, tags, embedding, added_at) VALUES (1, 'Bass/b.wav', "
        "'stems/Old Kit/Bass/b.wav', 'abc', 'bass', 1, 'filename', 'loop', 130, 1, "
        "'filename', 'F minor', 1, 'filename', 7.38, 48000, 2, -11, -0.5, -14, 13.5, "
        "'[\"dark\"]', NULL, 1.0)")
    old.close()

    db = backend.open()
    records = queries.list_stems(backend.library)
    assert len(records) == 1
    record = records[0]
    assert (record.kit, record.rel_path, record.bpm, record.key) == ("Old Kit", "Bass/b.wav",
                                                                      130.0, "F minor")
    assert record.embedding_model is None
    assert queries.stems_needing_embedding(backend.library, "features-v1")[0].id == record.id
    versions = db.execute_sql("SELECT version FROM schema_version ORDER BY version")
    assert [v for (v,) in versions] == list(range(1, schema.LATEST + 1))


def test_v3_database_gets_analysis_versions_and_drops_old_cached_analyses(backend):
    old = write_release(backend, 3)
    old.execute_sql(
        "INSERT INTO stem (kit_id, rel_path, stored_path, content_hash, category, "
        "category_confidence, category_source, kind, bpm, bpm_confidence, bpm_source, "
        "musical_key, key_confidence, key_source, duration, sample_rate, channels, lufs, "
        "peak_db, rms_db, crest_db, tags, embedding, added_at, embedding_model, descriptors, "
        "features) VALUES (1, 'a.wav', 'stems/Old Kit/a.wav', 'abc', 'pad', 1, 'filename', "
        "'loop', 120, 1, 'filename', 'C major', 1, 'filename', 8.0, 44100, 2, -14, -1, -16, "
        "15, '[]', NULL, 1.0, NULL, '{\"flux\": 0.25}', NULL)")
    old.execute_sql("UPDATE kit SET status = 'ingesting', source_name = 'Old Kit'")
    # A file a crash left analysed under release 3, its analysis cached in the old form.
    old.execute_sql("INSERT INTO ingestitem (kit_id, rel_path, state, attempts, updated_at, "
                    "content_hash, analysis) VALUES (1, 'b.wav', 'analysed', 1, 1.0, 'def', "
                    "'{\"ok\": true, \"values\": {}}')")
    old.close()

    backend.open()
    [record] = queries.list_stems(backend.library)
    assert (record.analysis_version, record.key, record.descriptors) == (0, "C major",
                                                                         {"flux": 0.25})
    assert [r.id for r in queries.stems_below_analysis_version(backend.library, 1)] == [
        record.id]
    [kit] = queries.unfinished_kits()
    [item] = queries.pending_items(kit)
    assert (item.rel_path, item.state, item.analysis, item.content_hash) == (
        "b.wav", "discovered", None, "def")


def test_newer_database_is_refused(backend):
    db = backend.open()
    with db.atomic():
        db.execute_sql("INSERT INTO schema_version VALUES (99)")
    db.close()
    with pytest.raises(StoreError, match="newer than this release"):
        backend.open()


def test_reopen_keeps_data_and_does_not_remigrate(backend):
    backend.open()
    kit = queries.claim_kit("K.zip", "K", "zip")
    add_stem(kit, "a.wav")
    db = backend.open()
    assert len(queries.list_stems(backend.library)) == 1
    assert db.execute_sql("SELECT count(*) FROM schema_version").fetchone()[0] == schema.LATEST


def test_claim_kit_resumes_unfinished_and_never_reopens_finished(backend):
    backend.open()
    first = queries.claim_kit("Kit.zip", "Kit", "zip")
    assert queries.claim_kit("Kit.zip", "Kit", "zip").id == first.id
    queries.finish_kit(first)
    assert queries.unfinished_kits() == []
    second = queries.claim_kit("Kit.zip", "Kit", "zip")
    assert second.id != first.id and second.name == "Kit (2)"
    assert queries.unfinished_kits() == [second]


def test_journal_rows_are_unique_per_kit_file(backend):
    backend.open()
    kit = queries.claim_kit("K", "K", "folder")
    queries.record_items(kit, ["a.wav", "b.wav"])
    queries.record_items(kit, ["a.wav", "c.wav"])
    assert [i.rel_path for i in queries.pending_items(kit)] == ["a.wav", "b.wav", "c.wav"]
    item = queries.pending_items(kit)[0]
    done = queries.set_state(item, "quarantined", reason="undecodable: not audio")
    assert (done.state, done.reason, done.rel_path) == ("quarantined",
                                                        "undecodable: not audio", "a.wav")
    assert queries.item_states(kit) == {"discovered": 2, "quarantined": 1}
    assert queries.last_errors()[0]["reason"] == "undecodable: not audio"


def test_cached_analysis_survives_in_the_journal_and_is_stored_once(backend):
    backend.open()
    kit = queries.claim_kit("K", "K", "folder")
    queries.record_items(kit, ["a.wav"])
    [item] = queries.pending_items(kit)
    hashed = queries.set_state(item, "discovered", content_hash="h1")
    queries.set_state(hashed, "analysed", analysis=stem_columns(embedding=np.ones(3)))
    [resumed] = queries.pending_items(kit)  # as a restart after a crash reads it
    assert (resumed.state, resumed.content_hash) == ("analysed", "h1")
    stem_id = queries.commit_stem(resumed, resumed.analysis, stored_path="stems/K/a.wav",
                                  content_hash="h1")
    assert queries.pending_items(kit) == [] and queries.stem_id_by_hash("h1") == stem_id
    [record] = queries.list_stems(backend.library)
    assert (record.tags, record.descriptors, record.analysis_version) == (("dark",),
                                                                          {"flux": 0.5}, 1)
    assert np.array_equal(record.features, np.arange(4)) and record.embedding.tolist() == [1] * 3


def test_a_column_the_schema_lacks_is_refused(backend):
    backend.open()
    kit = queries.claim_kit("K", "K", "folder")
    queries.record_items(kit, ["a.wav"])
    [item] = queries.pending_items(kit)
    with pytest.raises(StoreError, match=r"a.wav: no stem column for \['sparkle'\]"):
        queries.commit_stem(item, stem_columns(sparkle=1.0), stored_path="stems/K/a.wav",
                            content_hash="x")
    assert queries.list_stems(backend.library) == []


def test_stems_below_an_analysis_version(backend):
    backend.open()
    kit = queries.claim_kit("K", "K", "folder")
    add_stem(kit, "old.wav", analysis_version=1)
    add_stem(kit, "new.wav", analysis_version=2)
    below = queries.stems_below_analysis_version(backend.library, 2)
    assert [r.rel_path for r in below] == ["old.wav"]
    assert queries.stems_below_analysis_version(backend.library, 1) == []


def test_embeddings_round_trip(backend):
    backend.open()
    kit = queries.claim_kit("K", "K", "folder")
    stem_id = add_stem(kit, "a.wav")
    vector = np.linspace(-1, 1, 32).astype(np.float32)
    queries.update_embedding(stem_id, vector, "features-v1")
    record = queries.list_stems(backend.library)[0]
    assert np.array_equal(record.embedding, vector)
    assert record.embedding_model == "features-v1"


def test_kit_revision_moves_when_a_stem_is_added_relabelled_or_removed(backend):
    backend.open()
    kit, other = (queries.claim_kit(name, name, "folder") for name in ("K", "Other"))

    def revisions() -> tuple[int, int]:
        found = {k.name: k.revision for k in Kit.select()}
        return found["K"], found["Other"]

    assert revisions() == (0, 0)
    stem_id = add_stem(kit, "a.wav", musical_key="A minor")
    first = revisions()
    assert first[0] > 0 and first[1] == 0
    queries.update_embedding(stem_id, np.ones(4, np.float32), "features-v1")
    assert revisions() == first  # a vector is not a label a profile reads
    Stem.update(musical_key="C major").where(Stem.id == stem_id).execute()
    relabelled = revisions()
    assert relabelled[0] > first[0] and relabelled[1] == 0
    Stem.delete().where(Stem.id == stem_id).execute()
    assert revisions()[0] > relabelled[0] and revisions()[1] == 0


def test_unreadable_database_raises_store_error(tmp_path):
    path = tmp_path / "stems.db"
    Path(path).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="stems.db"):
        open_database(path)


def test_pages_by_keyset_and_a_tracks_candidates_by_kit(backend):
    backend.open()
    kit, other = queries.claim_kit("K", "K", "folder"), queries.claim_kit("L", "L", "folder")
    ids = [add_stem(kit if n % 2 else other, f"{n}.wav", category="kick" if n % 3 else "pad")
           for n in range(12)]
    kicks = [i for n, i in enumerate(ids) if n % 3]
    first = queries.list_stems(backend.library, category="kick", limit=3)
    rest = queries.list_stems(backend.library, category="kick", after=first[-1].id, limit=30)
    assert [s.id for s in first + rest] == kicks
    found = queries.kit_stems(backend.library, ["K"], categories=["pad"])
    assert [s.id for s in found] == [i for n, i in enumerate(ids) if n % 2 and not n % 3]
    assert len(queries.kit_stems(backend.library, ["K", "L"])) == 12


def test_a_kit_profile_is_replaced_not_doubled(backend):
    backend.open()
    kit = queries.claim_kit("K", "K", "folder")
    queries.save_kit_profile(kit.id, "one", {"family": "techno"})
    queries.save_kit_profile(kit.id, "two", {"family": "house"})
    assert queries.kit_profiles([kit.id]) == {kit.id: ("two", {"family": "house"})}


# -- the counts of `traum status` (schema v9: kept by triggers) ---------------------------

def grouped_counts(db: Database) -> dict:
    """What `queries.library_stats` reports, counted from the rows themselves."""
    def grouped(sql: str) -> dict[str, int]:
        return {name: n for name, n in db.execute_sql(sql)}

    by_category = grouped("SELECT category, count(*) FROM stem GROUP BY category")
    kits = grouped("SELECT status, count(*) FROM kit GROUP BY status")
    [(renders,)] = db.execute_sql("SELECT count(*) FROM render")
    return {"stems": sum(by_category.values()), "kits": sum(kits.values()),
            "kits_by_status": kits, "by_category": by_category, "renders": renders,
            "journal": grouped("SELECT state, count(*) FROM ingestitem GROUP BY state")}


def test_status_counts_stay_exact_through_every_change(backend):
    db = backend.open()
    kit, other = queries.claim_kit("K", "K", "folder"), queries.claim_kit("L", "L", "folder")
    ids = [add_stem(kit, f"{n}.wav", category=("kick", "snare", "pad")[n % 3]) for n in range(6)]
    add_stem(other, "x.wav", category="kick")
    queries.record_items(kit, ["0.wav", "new.wav", "bad.wav"])  # 0.wav is journalled already
    revisions.set_correction(ids[0], "category", "clap")  # the user's fix of a category
    revisions.set_correction(ids[1], "category", "snare")  # the same category: nothing moves
    new, bad = sorted(queries.pending_items(kit), key=lambda item: item.rel_path, reverse=True)
    queries.set_state(queries.set_state(new, "analysed"), "discovered")
    queries.set_state(bad, "quarantined", reason="undecodable: not audio")
    queries.finish_kit(other)
    queries.record_render(prompt="techno", wav_path=Path("a.wav"), seed=1, lufs=-14.0,
                          true_peak_db=-1.0, duration=60.0)
    stats = queries.library_stats()
    assert stats == {"stems": 7, "kits": 2, "kits_by_status": {"complete": 1, "ingesting": 1},
                     "by_category": {"clap": 1, "kick": 2, "pad": 2, "snare": 2},
                     "journal": {"discovered": 1, "quarantined": 1, "stored": 7},
                     "renders": 1}
    assert stats == grouped_counts(db)
    with db.atomic():  # the kit's stems and journal go with it (ON DELETE CASCADE)
        db.execute_sql("DELETE FROM kit WHERE name = 'K'")
    stats = queries.library_stats()
    assert stats == {"stems": 1, "kits": 1, "kits_by_status": {"complete": 1},
                     "by_category": {"kick": 1}, "journal": {"stored": 1}, "renders": 1}
    assert stats == grouped_counts(db)


def test_a_library_migrated_to_counts_is_counted_from_its_rows(backend):
    old = write_release(backend, 8)
    for number, category in enumerate(("kick", "kick", "hihat")):
        old.execute_sql(
            "INSERT INTO stem (kit_id, rel_path, stored_path, content_hash, category, "
            "category_confidence, category_source, kind, bpm_confidence, bpm_source, "
            "key_confidence, key_source, duration, sample_rate, channels, peak_db, rms_db, "
            f"crest_db, tags, added_at) VALUES (1, '{number}.wav', 'stems/{number}.wav', "
            f"'h{number}', '{category}', 1, 'filename', 'oneshot', 0, 'none', 0, 'none', 0.5, "
            "44100, 2, -1, -16, 12, '[]', 1.0)")
        old.execute_sql("INSERT INTO ingestitem (kit_id, rel_path, state, updated_at) "
                        f"VALUES (1, '{number}.wav', 'stored', 1.0)")
    old.execute_sql("INSERT INTO ingestitem (kit_id, rel_path, state, updated_at) "
                    "VALUES (1, 'x.wav', 'quarantined', 1.0)")
    old.close()

    db = backend.open()
    stats = queries.library_stats()
    assert stats == {"stems": 3, "kits": 1, "kits_by_status": {"complete": 1},
                     "by_category": {"hihat": 1, "kick": 2},
                     "journal": {"quarantined": 1, "stored": 3}, "renders": 0}
    kit = queries.claim_kit("New.zip", "New", "zip")  # and counted on from there
    add_stem(kit, "n.wav", category="hihat")
    assert queries.library_stats() == grouped_counts(db)
    assert queries.library_stats()["by_category"] == {"hihat": 2, "kick": 2}
