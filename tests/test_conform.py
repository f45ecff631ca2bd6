"""Conforming stems (daemon.render.conform) and laying them out (daemon.render.sequence)."""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pedalboard
import pytest
import soundfile as sf
from render_helpers import fake_record

from daemon.categories import load_categories
from daemon.compose.plan import Plan, Section, StemQuery
from daemon.errors import RenderError
from daemon.render.conform import conform_loop, conform_oneshot, loop_geometry, read_audio
from daemon.render.patterns import GenrePattern
from daemon.render.sections import drop_sections
from daemon.render.select import Fit, Pick
from daemon.render.sequence import (
    Grid,
    Region,
    build_regions,
    pattern_hits,
    place_at_end,
    tile_loop,
    trigger,
)

SR = 44100
TABLE = load_categories(Path(__file__).resolve().parents[1] / "rules")


def write_stem(folder: Path, name: str, audio: np.ndarray, *, sample_rate: int = SR,
               **fields):
    """Write `audio` ((channels, n)) and return a library record pointing at it."""
    path = folder / name
    sf.write(path, audio.T, sample_rate, subtype="FLOAT")
    record = fake_record(zlib.crc32(name.encode()) % 10_000, fields.pop("category", "pad"),
                         **fields)
    return replace(record, path=path, rel_path=name, duration=audio.shape[1] / sample_rate,
                   sample_rate=sample_rate,
                   content_hash=hashlib.sha256(path.read_bytes()).hexdigest())


def click_loop(*, bpm: float, beats: int, sample_rate: int = SR) -> np.ndarray:
    """Stereo loop with a 5 ms decaying noise burst on every beat."""
    beat = 60.0 / bpm * sample_rate
    audio = np.zeros((2, round(beats * beat)), dtype=np.float32)
    burst = np.random.default_rng(0).standard_normal(round(0.005 * sample_rate))
    burst *= np.exp(-np.linspace(0, 6, burst.size))
    for index in range(beats):
        start = round(index * beat)
        audio[:, start:start + burst.size] = 0.8 * burst
    return audio


def onsets(audio: np.ndarray, *, sample_rate: int = SR) -> np.ndarray:
    """Sample positions where the 1 ms envelope first exceeds half its maximum, per burst."""
    envelope = np.abs(audio).max(axis=0)
    above = envelope > 0.5 * envelope.max()
    starts = np.flatnonzero(above & ~np.r_[False, above[:-1]])
    gap = round(0.05 * sample_rate)  # one onset per burst
    return starts[np.r_[True, np.diff(starts) > gap]]


def dominant_hz(audio: np.ndarray, *, sample_rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(audio[0] * np.hanning(audio.shape[1])))
    return float(np.argmax(spectrum) * sample_rate / audio.shape[1])


# -- decoding --------------------------------------------------------------------------------

def test_read_audio_resamples_and_folds_to_stereo(tmp_path):
    tone = np.sin(2 * np.pi * 441.0 * np.arange(22050) / 22050).astype(np.float32)
    sf.write(tmp_path / "mono.wav", tone, 22050)
    stereo = read_audio(tmp_path / "mono.wav", sample_rate=SR)
    assert stereo.shape == (2, 44100) and stereo.dtype == np.float32
    assert np.array_equal(stereo[0], stereo[1])
    assert dominant_hz(stereo) == pytest.approx(441.0, abs=2.0)
    quad = np.stack([tone, -tone, 0.5 * tone, 0.5 * tone])
    sf.write(tmp_path / "quad.wav", quad.T, 22050)
    folded = read_audio(tmp_path / "quad.wav", sample_rate=22050)
    assert np.allclose(folded[0], 0.75 * tone, atol=1e-4)
    assert np.allclose(folded[1], -0.25 * tone, atol=1e-4)


def test_read_audio_decodes_mp3_and_refuses_garbage(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 220.0 * np.arange(SR) / SR).astype(np.float32)
    with pedalboard.io.AudioFile(str(tmp_path / "tone.mp3"), "w", SR, 1) as handle:
        handle.write(tone[None, :])
    decoded = read_audio(tmp_path / "tone.mp3", sample_rate=SR)
    assert decoded.shape[0] == 2 and dominant_hz(decoded) == pytest.approx(220.0, abs=2.0)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    with pytest.raises(RenderError, match="broken.wav: cannot decode audio"):
        read_audio(tmp_path / "broken.wav", sample_rate=SR)


# -- loops -----------------------------------------------------------------------------------

def test_loop_is_stretched_onto_the_plan_grid_sample_exactly(tmp_path):
    stem = write_stem(tmp_path, "clicks.wav", click_loop(bpm=120.0, beats=8),
                      category="drum_loop", kind="loop", bpm=120.0)
    loop, ratio = conform_loop(stem, source_bpm=120.0, plan_bpm=126.0, semitones=0,
                               sample_rate=SR, cache_dir=tmp_path / "cache", categories=TABLE)
    assert ratio == pytest.approx(126.0 / 120.0)
    assert loop.shape == (2, round(2 * 240 / 126.0 * SR))
    expected = np.arange(8) * 60.0 / 126.0 * SR
    found = onsets(loop)
    assert len(found) == 8
    assert np.abs(found - expected).max() < 0.005 * SR  # Rubber Band keeps beats within 5 ms


def test_loop_length_corrects_a_slightly_wrong_tempo(tmp_path):
    # The file is exactly 2 bars at 125 BPM but the analysis said 124.
    stem = write_stem(tmp_path, "c.wav", click_loop(bpm=125.0, beats=8), category="drum_loop",
                      kind="loop", bpm=124.0)
    beats, bars, tempo = loop_geometry(stem, 124.0)
    assert (beats, bars) == (8, 2) and tempo == pytest.approx(125.0)
    loop, ratio = conform_loop(stem, source_bpm=124.0, plan_bpm=125.0, semitones=0,
                               sample_rate=SR, cache_dir=tmp_path / "cache", categories=TABLE)
    assert ratio == pytest.approx(1.0)
    assert np.array_equal(loop, read_audio(stem.path, sample_rate=SR)[:, :loop.shape[1]])


def test_short_loop_fills_a_bar(tmp_path):
    stem = write_stem(tmp_path, "half.wav", click_loop(bpm=128.0, beats=2), category="perc",
                      kind="loop", bpm=128.0)
    loop, _ = conform_loop(stem, source_bpm=128.0, plan_bpm=128.0, semitones=0,
                           sample_rate=SR, cache_dir=tmp_path / "cache", categories=TABLE)
    assert loop.shape[1] == round(240 / 128.0 * SR)
    assert len(onsets(loop)) == 4


def test_loop_is_pitch_shifted_to_the_key(tmp_path):
    tone = 0.4 * np.sin(2 * np.pi * 220.0 * np.arange(round(4 * 60 / 128 * SR)) / SR)
    stem = write_stem(tmp_path, "a.wav", np.stack([tone, tone]).astype(np.float32),
                      category="pad", kind="loop", bpm=128.0, key="A minor")
    loop, _ = conform_loop(stem, source_bpm=128.0, plan_bpm=128.0, semitones=2,
                           sample_rate=SR, cache_dir=tmp_path / "cache", categories=TABLE)
    assert dominant_hz(loop) == pytest.approx(220.0 * 2 ** (2 / 12), rel=0.01)


def test_stretched_sustained_loop_tiles_without_a_click(tmp_path):
    seconds = 4 * 60 / 128
    time = np.arange(round(seconds * SR)) / SR
    chord = sum(np.sin(2 * np.pi * f * time) for f in (110.0, 138.6, 164.8)) / 4
    stem = write_stem(tmp_path, "chord.wav", np.stack([chord, chord]).astype(np.float32),
                      category="pad", kind="loop", bpm=128.0, key="A minor")
    loop, _ = conform_loop(stem, source_bpm=128.0, plan_bpm=133.0, semitones=0,
                           sample_rate=SR, cache_dir=tmp_path / "cache", categories=TABLE)
    tiled = np.concatenate([loop, loop], axis=1)
    steps = np.abs(np.diff(tiled[0]))
    seam = loop.shape[1] - 1
    assert steps[seam - 1:seam + 2].max() < 3.0 * np.percentile(steps[seam - 2000:seam + 2000],
                                                                90)


def test_conform_results_are_cached(tmp_path, monkeypatch):
    calls = []
    stretch = pedalboard.time_stretch

    def counting(*args, **kwargs):
        if "transient_mode" in kwargs:  # stem audio, not the stretcher's calibration
            calls.append(kwargs)
        return stretch(*args, **kwargs)

    monkeypatch.setattr(pedalboard, "time_stretch", counting)
    stem = write_stem(tmp_path, "clicks.wav", click_loop(bpm=120.0, beats=4),
                      category="drum_loop", kind="loop", bpm=120.0)
    cache = tmp_path / "cache"
    first, _ = conform_loop(stem, source_bpm=120.0, plan_bpm=124.0, semitones=0,
                            sample_rate=SR, cache_dir=cache, categories=TABLE)
    assert len(calls) == 1 and calls[0]["transient_mode"] == "crisp"
    files = sorted(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"
    again, _ = conform_loop(stem, source_bpm=120.0, plan_bpm=124.0, semitones=0,
                            sample_rate=SR, cache_dir=cache, categories=TABLE)
    assert len(calls) == 1 and np.array_equal(first, again)
    conform_loop(stem, source_bpm=120.0, plan_bpm=124.0, semitones=1, sample_rate=SR,
                 cache_dir=cache, categories=TABLE)
    assert len(calls) == 2 and len(list(cache.iterdir())) == 2
    files[0].write_bytes(b"not an array")  # a damaged entry is recomputed
    repaired, _ = conform_loop(stem, source_bpm=120.0, plan_bpm=124.0, semitones=0,
                               sample_rate=SR, cache_dir=cache, categories=TABLE)
    assert len(calls) == 3 and np.array_equal(repaired, first)
    assert not [p for p in cache.iterdir() if p.suffix == ".tmp"]


def test_oneshot_keeps_its_timing_and_ends_silent(tmp_path):
    hit = click_loop(bpm=120.0, beats=1)[:, :9000] + 0.3
    stem = write_stem(tmp_path, "hit.wav", hit, category="kick")
    audio = conform_oneshot(stem, semitones=0, sample_rate=SR, cache_dir=tmp_path / "cache",
                            categories=TABLE)
    assert audio.shape == hit.shape
    assert np.allclose(audio[:, :8000], hit[:, :8000], atol=1e-6)
    assert np.abs(audio[:, -1]).max() == 0.0


# -- laying out ----------------------------------------------------------------------------

def pattern(kick: str, *, swing: float = 0.0) -> GenrePattern:
    velocities = {"X": 1.0, "x": 0.75, "o": 0.45, ".": 0.0}
    return GenrePattern("test", {"kick": tuple(velocities[c] for c in kick)}, swing)


def region_for(plan: Plan, *, lane: str = "kick", kind: str = "oneshot",
               sections: tuple[int, ...] = (0,), mode: str = "pattern") -> Region:
    stem = fake_record(1, lane, kind=kind)
    pick = Pick(sections[0], lane, lane, stem, Fit(1.0, None, 0, 1.0, 1.0))
    starts = plan.section_starts()
    end = starts[sections[-1]] + plan.structure[sections[-1]].bars
    return Region(lane, lane, pick, sections, starts[sections[0]], end, mode, TABLE[lane])


def test_pattern_hits_sit_on_the_grid_without_drift():
    plan = Plan("p", "techno", 137.0, "A minor", 1, structure=(Section("Long", 1000, 0.8),))
    grid = Grid(SR, 137.0)
    hits = pattern_hits(region_for(plan), grid=grid, plan=plan,
                        pattern=pattern("X..." * 4), rng=np.random.default_rng(0))
    positions = np.array([position for position, _ in hits])
    assert len(positions) == 4000
    expected = np.round(np.arange(4000) * grid.samples_per_bar / 4).astype(int)
    assert np.array_equal(positions, expected)  # bar 999 is exactly where it belongs
    gains = np.array([gain for _, gain in hits])
    assert gains.min() > 0.84 and gains.max() < 1.19 and gains.std() > 0.01  # ±1.5 dB spread


def test_swing_delays_off_sixteenths_and_quiet_sections_drop_ghosts():
    plan = Plan("p", "house", 120.0, "A minor", 1,
                structure=(Section("Loud", 1, 0.9), Section("Quiet", 1, 0.2)))
    grid = Grid(SR, 120.0)
    groove = pattern("Xo.. .... .... ....".replace(" ", ""), swing=0.25)
    loud = pattern_hits(region_for(plan, sections=(0,)), grid=grid, plan=plan, pattern=groove,
                        rng=np.random.default_rng(0))
    step = grid.samples_per_bar / 16
    assert [p for p, _ in loud] == [0, round(1.25 * step)]
    quiet = pattern_hits(region_for(plan, sections=(1,)), grid=grid, plan=plan, pattern=groove,
                         rng=np.random.default_rng(0))
    assert [p for p, _ in quiet] == [0]


def test_trigger_chokes_the_previous_hit():
    sample = np.ones((2, 1000), dtype=np.float32)
    out = trigger(sample, [(0, 1.0), (500, 0.5)], length=2000, sample_rate=SR)
    assert out[0, 400] == 1.0 and out[0, 499] < 0.05  # faded into the next hit
    assert out[0, 500] == 0.5 and out[0, 1499] == 0.5 and out[0, 1500] == 0.0


def test_tile_loop_fills_every_sample_and_starts_copies_on_bars():
    grid = Grid(SR, 137.0)  # 77255.47... samples per bar
    loop = np.ones((2, round(grid.samples_per_bar)), dtype=np.float32)
    loop[:, 1] = 2.0  # marks the second sample of each copy
    out = tile_loop(loop, grid=grid, start_bar=3, end_bar=40)
    assert out.shape[1] == grid.bar(40) - grid.bar(3)
    assert np.flatnonzero(out[0] == 2.0).tolist() == [grid.bar(b) - grid.bar(3) + 1
                                                      for b in range(3, 40)]
    assert out.min() == 1.0


def test_place_at_end_ends_a_riser_on_the_last_sample():
    riser = np.linspace(0, 1, 300, dtype=np.float32)[None, :].repeat(2, axis=0)
    assert place_at_end(riser, length=1000)[0, -1] == 1.0
    assert place_at_end(riser, length=1000)[0, 699] == 0.0
    assert place_at_end(riser, length=100)[0, 0] == riser[0, 200]


def test_regions_merge_a_lane_over_sections_and_fx_rise_into_drops():
    q = StemQuery
    plan = Plan("p", "techno", 128.0, "A minor", 1, structure=(
        Section("Intro", 4, 0.3, (q("pad"),)),
        Section("Build", 4, 0.5, (q("pad"), q("fx"))),
        Section("Drop", 8, 1.0, (q("pad"), q("fx"))),
        Section("Outro", 4, 0.4, (q("kick"),))))
    assert drop_sections(plan) == {2}
    pad = fake_record(1, "pad", kind="loop", bpm=128, key="A minor")
    fx = fake_record(2, "fx")
    fit = Fit(1.0, None, 0, 1.0, 1.0)
    picks = [Pick(i, "pad", "pad", pad, fit) for i in range(3)]
    picks += [Pick(1, "fx", "fx", fx, fit), Pick(2, "fx", "fx", fx, fit),
              Pick(3, "kick", "kick", fake_record(3, "kick"), fit)]
    regions = {(r.lane, r.start_bar): r for r in build_regions(plan, picks, categories=TABLE)}
    assert regions[("pad", 0)].sections == (0, 1, 2) and regions[("pad", 0)].end_bar == 16
    assert regions[("fx", 4)].mode == "riser" and regions[("fx", 4)].end_bar == 8
    assert regions[("fx", 8)].mode == "hit"
    assert regions[("kick", 16)].mode == "pattern"
    assert regions[("pad", 0)].mode == "loop"
