"""Kits that defeat a consensus, through the real ingest: a one-file kit, a kit mixing two
tempi, a kit of pure noise, a loop off the bar grid. Each is stored with a low confidence and
the reason in words, never a crash."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from kit_helpers import make_engine

from daemon.cli import main
from daemon.store import queries
from daemon.synth import KitSample, synthesize_kit, write_kit_folder


def ingest(engine, name: str, samples: list[KitSample]) -> list:
    write_kit_folder(samples, engine.config.paths.inbox / name)
    report = engine.ingest(engine.config.paths.inbox / name)
    assert report.stored == len(samples) and not report.errors
    return queries.list_stems(engine.config.paths.library, kit=name)


def loops(bpm: float, seed: int, prefix: str) -> list[KitSample]:
    return [replace(sample, name=f"{prefix}{sample.name}") for sample in
            synthesize_kit(bpm=bpm, key="C minor", seed=seed, names="anonymous")
            if sample.kind == "loop"]


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(tmp_path)
    yield engine
    engine.close()


def test_a_one_file_kit_has_no_consensus(engine, tmp_path, capsys):
    drum = next(s for s in loops(128.0, 80, "") if s.category == "drum_loop")
    [stem] = ingest(engine, "Solo Drums", [replace(drum, name="Audio 1-07.wav")])
    assert stem.bpm == pytest.approx(128.0, abs=1.0)
    assert stem.bpm_confidence <= 0.5 and "no kit consensus" in stem.bpm_reason
    pad = next(s for s in loops(128.0, 81, "") if s.category == "pad")
    [tonal] = ingest(engine, "Solo Pad", [replace(pad, name="ST_0046.wav")])
    assert tonal.key is not None and not tonal.key_trusted
    assert "no kit consensus" in tonal.key_reason
    assert main(["stems", "--kit", "Solo Pad", "--config", str(tmp_path / "config.toml")]) == 0
    assert f"{tonal.key}?" in capsys.readouterr().out  # to check by ear


def test_a_kit_mixing_two_tempi_keeps_both_and_says_so(engine):
    samples = loops(120.0, 82, "a_") + loops(140.0, 83, "b_")
    truth = {s.name: s.bpm for s in samples}
    stems = [stem for stem in ingest(engine, "Two Tempi", samples) if stem.kind == "loop"]
    assert len(stems) >= 10
    for stem in stems:
        assert stem.bpm == pytest.approx(truth[stem.rel_path], abs=1.0), stem.rel_path
        assert "kit mixes tempi" in stem.bpm_reason and stem.bpm_confidence < 0.9


def test_a_kit_of_pure_noise_is_unsure_of_everything_it_claims(engine):
    rng = np.random.default_rng(84)
    samples = []
    for number, seconds in enumerate((2.3, 4.1, 8.0, 9.3)):
        white = rng.standard_normal(int(seconds * 44100))
        pink = np.cumsum(white) * 0.02 if number % 2 else white  # brown-ish and white
        audio = (0.3 * pink / np.max(np.abs(pink))).astype(np.float32)
        samples.append(KitSample(name=f"noise_{number}.wav", audio=np.stack([audio, audio]),
                                 sample_rate=44100, category="fx", kind="loop", bpm=None,
                                 key=None, tags=()))
    for stem in ingest(engine, "Noise", samples):
        if stem.bpm is not None:
            assert stem.bpm_confidence <= 0.5 and stem.bpm_reason, stem.rel_path
        if stem.key is not None:
            assert not stem.key_trusted and stem.key_reason, stem.rel_path
        assert stem.key is not None or stem.key_source == "none"


def test_a_loop_off_the_bar_grid_takes_the_kit_tempo_less_surely(engine):
    samples = loops(128.0, 85, "")
    drum = next(s for s in samples if s.category == "drum_loop")
    extra = int(0.37 * drum.sample_rate)  # 4 bars and a ringing tail: no whole bar count
    tail = np.pad(drum.audio, ((0, 0), (0, extra)))
    samples.append(replace(drum, name="long_tail.wav", audio=tail))
    stems = {stem.rel_path: stem for stem in ingest(engine, "Tails", samples)}
    odd = stems["long_tail.wav"]
    assert odd.bpm == pytest.approx(128.0, abs=1.0)
    assert "no whole bar count" in odd.bpm_reason
    assert odd.bpm_confidence < stems[drum.name].bpm_confidence
    other_tail = np.pad(drum.audio, ((0, 0), (0, extra + 777)))  # new content, not a duplicate
    alone = ingest(engine, "Tail Alone", [replace(drum, name="x.wav", audio=other_tail)])[0]
    assert alone.bpm_confidence <= 0.5 and "no whole bar count" in alone.bpm_reason
