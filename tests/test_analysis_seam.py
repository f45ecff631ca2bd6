"""The analysis seam: what the worker analyses is what the library stores, field by field,
with the version of the analysis code that made it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from store_helpers import KINDS, fresh_backend

from daemon.ingest import worker
from daemon.ingest.analyse import ANALYSIS_VERSION, AnalysisResult
from daemon.store import queries
from daemon.store.records import StemRecord

ROOT = Path(__file__).resolve().parents[1]


def analysed_pad() -> AnalysisResult:
    return AnalysisResult(
        duration=8.0, sample_rate=48000, channels=2, peak_db=-1.5, lufs=-14.25, rms_db=-16.0,
        crest_db=14.5, kind="loop", kind_source="audio", bpm=120.0, bpm_confidence=0.75,
        bpm_source="length",
        key="C major", key_confidence=0.5, key_source="audio", category="pad",
        category_confidence=0.875, category_source="audio", tags=("warm", "wide"),
        descriptors={"flux": np.float64(0.25)}, features=np.arange(6, dtype=np.float32),
        embedding=np.full(4, 0.5, np.float32), embedding_model="features-test")


@pytest.mark.parametrize("kind", KINDS)
def test_every_analysis_field_is_stored_and_read_back(tmp_path, kind):
    with fresh_backend(kind, tmp_path) as backend:
        backend.open()
        check_round_trip(tmp_path)


def check_round_trip(tmp_path: Path) -> None:
    kit = queries.claim_kit("K", "K", "folder")
    queries.record_items(kit, ["Pads/pad.wav"])
    [item] = queries.pending_items(kit)
    result = analysed_pad()
    queries.commit_stem(item, result.to_columns(), stored_path="stems/K/Pads/pad.wav",
                        content_hash="h")
    [record] = queries.list_stems(tmp_path)
    assert {f.name for f in fields(AnalysisResult)} <= {f.name for f in fields(StemRecord)}
    for field in fields(AnalysisResult):
        stored, analysed = getattr(record, field.name), getattr(result, field.name)
        if isinstance(analysed, np.ndarray):
            assert np.array_equal(stored, analysed), field.name
        else:
            assert stored == analysed, field.name
    assert record.analysis_version == ANALYSIS_VERSION
    assert (record.rel_path, record.path) == ("Pads/pad.wav", tmp_path / "stems/K/Pads/pad.wav")


def test_the_worker_returns_a_typed_result_or_a_failure(tmp_path, synth_kit,
                                                       trained_classifier):
    worker.init_worker(str(ROOT / "rules"), (str(trained_classifier),))
    sample = next(s for s in synth_kit if s.category == "bass")
    source = tmp_path / "bass.wav"
    sf.write(source, sample.audio.T, sample.sample_rate)
    result = worker.analyse_file(str(source), sample.name)
    assert isinstance(result, AnalysisResult)
    assert (result.category, result.analysis_version) == ("bass", ANALYSIS_VERSION)
    assert result.embedding is not None and result.embedding_model
    assert np.linalg.norm(result.embedding) > 0

    (tmp_path / "text.wav").write_text("not audio\n" * 20)
    failure = worker.analyse_file(str(tmp_path / "text.wav"), "text.wav")
    assert isinstance(failure, worker.AnalysisFailure)
    assert failure.reason == "undecodable" and failure.detail
