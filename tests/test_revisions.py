"""Changes to committed stems: corrections own their columns, the kit pass and re-analysis
write around them, re-analysis is written once per stem, marking is the durable work list."""

from __future__ import annotations

import numpy as np
import pytest
from store_helpers import KINDS, fresh_backend
from test_store import add_stem, write_release

from daemon.errors import StoreError
from daemon.store import queries, revisions


@pytest.fixture(params=KINDS)
def backend(request, tmp_path):
    with fresh_backend(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def kit(backend):
    backend.open()
    return queries.claim_kit("K", "K", "folder")


def test_a_correction_owns_its_columns_against_every_later_analysis(backend, kit):
    stem_id = add_stem(kit, "a.wav", analysis_version=2)
    revisions.set_correction(stem_id, "key", "D minor")
    revisions.set_correction(stem_id, "bpm", 90.0)
    changed = revisions.update_stems({stem_id: {"musical_key": "A minor", "bpm": 128.0,
                                                "key_reason": "kit", "category": "pad"}})
    assert changed == 1
    record = revisions.get_stem(backend.library, stem_id)
    assert (record.key, record.key_source, record.key_trusted, record.key_confidence) == (
        "D minor", "user", True, 1.0)
    assert (record.bpm, record.category, record.overrides) == (90.0, "pad", ("bpm", "key"))
    assert revisions.write_reanalysis(stem_id, {"bpm": 120.0, "category": "lead",
                                                "embedding": np.ones(3)}, version=3)
    record = revisions.get_stem(backend.library, stem_id)
    assert (record.bpm, record.category, record.analysis_version) == (90.0, "lead", 3)
    assert record.embedding is None  # re-analysis never writes the search vector


def test_a_stem_is_reanalysed_once_and_marking_lists_the_work(backend, kit):
    first, second = add_stem(kit, "a.wav"), add_stem(kit, "b.wav")
    other = queries.claim_kit("L", "L", "folder")
    third = add_stem(other, "c.wav")
    assert revisions.count_below_version(2) == 3
    assert revisions.write_reanalysis(first, {}, version=2)
    assert not revisions.write_reanalysis(first, {"bpm": 1.0}, version=2)  # already done
    assert revisions.count_below_version(2, kit="K") == 1
    assert revisions.mark_for_reanalysis(kit="L") == 1
    assert revisions.count_below_version(1) == 1
    below = queries.stems_below_analysis_version(backend.library, 2)
    assert [r.id for r in below] == [second, third]


def test_corrections_name_a_known_field_and_stem(kit):
    stem_id = add_stem(kit, "a.wav")
    with pytest.raises(StoreError, match="cannot be corrected"):
        revisions.set_correction(stem_id, "lufs", -3.0)
    with pytest.raises(StoreError, match="no stem 999"):
        revisions.set_correction(999, "bpm", 120.0)
    with pytest.raises(StoreError, match="no stem column"):
        revisions.update_stems({stem_id: {"sparkle": 1.0}})


def test_v5_database_trusts_its_named_keys_and_drops_cached_analyses(backend):
    old = write_release(backend, 5)
    values = ", ".join([old.param] * 4)
    for name, source in (("named.wav", "filename"), ("heard.wav", "audio")):
        old.execute_sql(
            "INSERT INTO stem (kit_id, rel_path, stored_path, content_hash, key_source, "
            "category, category_confidence, category_source, kind, bpm, bpm_confidence, "
            "bpm_source, musical_key, key_confidence, duration, sample_rate, channels, lufs, "
            "peak_db, rms_db, crest_db, tags, added_at, analysis_version) "
            f"VALUES (1, {values}, 'pad', 1, 'filename', 'loop', 120, 1, 'length', 'C major', "
            "0.5, 8.0, 44100, 2, -14, -1, -16, 15, '[]', 1.0, 1)",
            (name, f"stems/Old Kit/{name}", name, source))
    old.execute_sql("INSERT INTO ingestitem (kit_id, rel_path, state, attempts, updated_at, "
                    "content_hash, analysis) VALUES (1, 'c.wav', 'analysed', 1, 1.0, 'c', '{}')")
    old.close()

    backend.open()
    stems = {stem.rel_path: stem for stem in queries.list_stems(backend.library)}
    assert stems["named.wav"].key_trusted and not stems["heard.wav"].key_trusted
    assert (stems["heard.wav"].pulse_bpm, stems["heard.wav"].chroma,
            stems["heard.wav"].bpm_reason) == (None, None, "")
    [kit] = queries.complete_kits()
    assert queries.item_states(kit) == {"discovered": 1}


def test_v10_stems_read_an_unknown_kind_source_and_cached_analyses_are_dropped(backend):
    old = write_release(backend, 10)
    values = ", ".join([old.param] * 3)
    old.execute_sql(
        "INSERT INTO stem (kit_id, rel_path, stored_path, content_hash, "
        "category, category_confidence, category_source, kind, bpm, bpm_confidence, "
        "bpm_source, key_confidence, key_source, duration, sample_rate, channels, lufs, "
        "peak_db, rms_db, crest_db, tags, added_at, analysis_version) "
        f"VALUES (1, {values}, 'chord', 1, 'audio', 'oneshot', NULL, 0, 'none', 0, 'none', "
        "4.0, 44100, 2, -14, -1, -16, 15, '[]', 1.0, 4)",
        ("a.wav", "stems/Old Kit/a.wav", "a"))
    old.execute_sql("INSERT INTO ingestitem (kit_id, rel_path, state, attempts, updated_at, "
                    "content_hash, analysis) VALUES (1, 'c.wav', 'analysed', 1, 1.0, 'c', '{}')")
    old.close()

    backend.open()
    [stem] = queries.list_stems(backend.library)
    # "none" is never weighed against the kit: the kit pass waits for the re-analysis.
    assert (stem.kind, stem.kind_source) == ("oneshot", "none")
    [kit] = queries.complete_kits()
    assert queries.item_states(kit) == {"discovered": 1}
