"""Engine work units: prompt files, re-embedding after a backend change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.config import load_config
from daemon.embed.features import FEATURES_MODEL
from daemon.errors import PlanError
from daemon.folders import read_prompt
from daemon.store import queries
from daemon.work import Engine

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def engine(tmp_path):
    (tmp_path / "config.toml").write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')
    return Engine(load_config(tmp_path / "config.toml"))


def test_stems_from_another_model_are_reembedded(engine, synth_kit):
    library = engine.config.paths.library
    kit = queries.claim_kit("Old", "Old", "folder")
    for index, sample in enumerate(synth_kit[:3]):
        stored = Path("stems") / "Old" / f"{index}.wav"
        (library / stored).parent.mkdir(parents=True, exist_ok=True)
        sf.write(library / stored, sample.audio.T, sample.sample_rate)
        queries.record_items(kit, [stored.name])
        item = next(i for i in queries.pending_items(kit) if i.rel_path == stored.name)
        queries.commit_stem(item, dict(
            category=sample.category, category_confidence=1.0, category_source="filename",
            kind=sample.kind, bpm=sample.bpm, bpm_confidence=1.0, bpm_source="filename",
            musical_key=sample.key, key_confidence=1.0, key_source="filename",
            duration=sample.audio.shape[1] / sample.sample_rate,
            sample_rate=sample.sample_rate, channels=2, lufs=-12.0, peak_db=-1.0,
            rms_db=-14.0, crest_db=13.0, tags=(), descriptors={}, features=None,
            embedding=np.ones(8, np.float32), embedding_model="some-old-model",
            analysis_version=1), stored_path=stored.as_posix(), content_hash=str(index))
    assert engine.reembed(limit=2) == 2
    assert engine.reembed(limit=2) == 1
    assert engine.reembed() == 0
    for record in queries.list_stems(library):
        assert record.embedding_model == FEATURES_MODEL
        assert np.linalg.norm(record.embedding) == pytest.approx(1.0, abs=1e-4)


def test_prompt_files_must_be_utf8_and_not_empty(tmp_path):
    good = tmp_path / "a.prompt"
    good.write_bytes("\ufeffaggressiver düsterer Techno 135 bpm\n".encode())
    assert read_prompt(good).startswith("aggressiver düsterer")
    latin = tmp_path / "b.prompt"
    latin.write_bytes("düster".encode("latin-1"))
    with pytest.raises(PlanError, match="b.prompt: prompt is not UTF-8"):
        read_prompt(latin)
    empty = tmp_path / "c.prompt"
    empty.write_text("  \n")
    with pytest.raises(PlanError, match="c.prompt: prompt is empty"):
        read_prompt(empty)
