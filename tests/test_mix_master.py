"""Mixing (daemon.render.mix), mastering (daemon.render.master) and WAV export
(daemon.render.export)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from render_helpers import click_ratio, fake_record
from scipy.signal import resample_poly

from daemon.categories import load_categories
from daemon.compose.plan import Plan, Section
from daemon.errors import RenderError
from daemon.render.export import Cue, WavWriter, read_cues, write_wav
from daemon.render.master import (
    apply_gain,
    coarse_block,
    integrated_loudness,
    limiter_curve,
    master,
    measure,
    true_peak_db,
)
from daemon.render.mix import (
    DUCK_DEPTH_DB,
    duck_gain,
    energy_gain_db,
    envelope_block,
    envelope_points,
    lane_gain_db,
    ride_sections,
    sweep_into,
)
from daemon.render.select import Fit, Pick
from daemon.render.sequence import Grid, Region

SR = 44100
TABLE = load_categories(Path(__file__).resolve().parents[1] / "rules")


def reference_true_peak(audio: np.ndarray) -> float:
    """Independent 4x-oversampled true peak: scipy's resample_poly on the whole signal."""
    return float(20 * np.log10(np.abs(resample_poly(audio, 4, 1, axis=1)).max()))


def music_like(seconds: float, *, seed: int = 0, sample_rate: int = SR) -> np.ndarray:
    """Peaky stereo test signal: decaying 55 Hz kicks every 0.5 s over noise and a chord."""
    rng = np.random.default_rng(seed)
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    kicks = 0.9 * np.sin(2 * np.pi * 55 * time) * np.exp(-(time % 0.5) * 18)
    chord = 0.1 * sum(np.sin(2 * np.pi * f * time) for f in (220.0, 277.2, 329.6))
    noise = 0.03 * rng.standard_normal((2, time.size))
    return (kicks + chord + noise).astype(np.float32)


# -- measuring -------------------------------------------------------------------------------

@pytest.mark.parametrize("length", [1, 300, 44100, 8192 * 15 + 7, 400_001])
def test_true_peak_matches_whole_signal_oversampling(length):
    audio = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32) * 0.2
    assert true_peak_db(audio, SR) == pytest.approx(reference_true_peak(audio), abs=1e-4)


def test_true_peak_sees_inter_sample_peaks():
    # A quarter-sample-rate sine sampled 45 degrees off its crests reads 3 dB low on samples.
    time = np.arange(4096)
    audio = np.tile(np.sin(np.pi / 2 * time + np.pi / 4), (2, 1)).astype(np.float32)
    assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_db(audio, SR) == pytest.approx(0.0, abs=0.2)  # the filter's ripple


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_integrated_loudness_matches_pyloudnorm(sample_rate):
    audio = music_like(7.3, sample_rate=sample_rate)
    audio[:, :sample_rate] *= 0.01  # a quiet start exercises the gates
    expected = pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64))
    assert integrated_loudness(audio, sample_rate) == pytest.approx(expected, abs=1e-6)


def test_silence_and_short_audio_have_no_loudness():
    assert integrated_loudness(np.zeros((2, SR)), SR) == float("-inf")
    assert integrated_loudness(np.ones((2, 1000), dtype=np.float32), SR) == float("-inf")


# -- mastering -------------------------------------------------------------------------------

@pytest.mark.parametrize(("scale", "target", "ceiling"), [(1.0, -14.0, -1.0), (0.05, -14.0, -1.0),
                                                          (1.0, -9.0, -1.0), (3.0, -16.0, -2.0)])
def test_master_reaches_loudness_under_the_true_peak_ceiling(scale, target, ceiling):
    audio = music_like(20.0) * scale
    result = master(audio, sample_rate=SR, target_lufs=target, ceiling_db=ceiling)
    measured = pyloudnorm.Meter(SR).integrated_loudness(audio.T.astype(np.float64))
    assert measured == pytest.approx(target, abs=0.5)
    assert reference_true_peak(audio) <= ceiling
    assert result.lufs == pytest.approx(measured, abs=1e-6)
    assert result.true_peak_db == pytest.approx(reference_true_peak(audio), abs=1e-3)
    assert result.notes == ()


def test_master_says_when_the_target_is_unreachable():
    audio = np.zeros((2, SR * 3), dtype=np.float32)
    audio[:, ::4410] = 1.0  # sparse clicks: loud enough only by squashing them to nothing
    result = master(audio, sample_rate=SR, target_lufs=-5.0, ceiling_db=-1.0)
    assert result.notes and "unreachable" in result.notes[0]
    assert reference_true_peak(audio) <= -1.0


def test_limiter_curve_never_exceeds_what_each_block_needs():
    rng = np.random.default_rng(3)
    peaks_db = rng.uniform(-30, 6, size=5000)
    curve = limiter_curve(peaks_db, gain_db=2.0, ceiling_db=-1.0, block_seconds=15 / SR)
    need = np.minimum(0.0, -1.0 - (2.0 + peaks_db))
    # Each block's gain runs between its two nodes; both must honour the block.
    assert np.all(curve[:-1] <= need + 1e-9) and np.all(curve[1:] <= need + 1e-9)
    assert curve.max() <= 0.0


def limited(audio: np.ndarray, over_db: float) -> tuple[np.ndarray, np.ndarray]:
    """`audio` pushed `over_db` into a 0 dB ceiling: the limited audio and the gain curve (dB,
    per coarse block of 15 samples)."""
    coarse = coarse_block(SR)
    usable = audio.shape[1] // coarse * coarse
    peaks = np.abs(audio[:, :usable]).max(axis=0).reshape(-1, coarse).max(axis=1)
    curve = limiter_curve(20 * np.log10(np.maximum(peaks, 1e-12)), gain_db=over_db,
                          ceiling_db=0.0, block_seconds=coarse / SR)
    out = audio[:, :usable].copy()
    apply_gain(out, gain_db=over_db, envelope_db=curve, coarse=coarse)
    return out, curve


def test_the_limiter_does_not_ride_a_sustained_bass():
    # Peaks of a 40 Hz bass come every 12.5 ms; a gain that recovered between them would
    # distort it (0.19 % THD with a 5 ms hold).
    t = np.arange(2 * SR) / SR
    bass = np.tile(np.sin(2 * np.pi * 40.0 * t), (2, 1)).astype(np.float32)
    out, _ = limited(bass, 4.0)
    steady = out[0, SR // 2:SR // 2 + SR] * np.hanning(SR)
    spectrum = np.abs(np.fft.rfft(steady))  # 1 Hz bins
    harmonics = np.sqrt(sum(spectrum[k * 40 - 2:k * 40 + 3].max() ** 2 for k in range(2, 10)))
    assert harmonics / spectrum[38:43].max() < 1e-4


def test_the_limiter_recovers_soon_after_a_kick():
    # A kick 4 dB over the ceiling over a quiet pad: 60 ms after its body ends the gain is
    # back within 0.5 dB, before the offbeat (a slow recovery pumps the pad through it).
    t = np.arange(SR) / SR
    body = 0.15  # seconds
    kick = np.where(t < body, np.sin(2 * np.pi * 55.0 * t), 0.0)
    pad = 0.05 * np.sin(2 * np.pi * 220.0 * t)
    _, curve = limited(np.tile(kick + pad, (2, 1)).astype(np.float32), 4.0)
    block = coarse_block(SR) / SR
    assert curve[:round(body / block)].min() < -3.5  # the kick is limited
    assert curve[round((body + 0.06) / block):].min() > -0.5


def test_measure_is_exact_where_the_limiter_can_act():
    audio = music_like(5.0)
    exact = measure(audio, sample_rate=SR, target_lufs=-14.0, ceiling_db=-1.0)
    full = np.abs(resample_poly(audio, 4, 1, axis=1)).max(axis=0)
    blocks = full[:exact.samples * 4 // 60 * 60].reshape(-1, 60).max(axis=1)
    gain = -14.0 - exact.lufs
    relevant = 20 * np.log10(blocks) + gain > -1.0 - 6.0
    assert np.allclose(exact.peaks[:blocks.size][relevant], blocks[relevant], rtol=1e-4)
    assert np.all(exact.peaks[:blocks.size] >= blocks * (1 - 1e-4))  # elsewhere a bound


# -- mixing ----------------------------------------------------------------------------------

def region(plan: Plan, lane: str, sections: tuple[int, ...]) -> Region:
    pick = Pick(sections[0], lane, lane, fake_record(1, lane), Fit(1.0, None, 0, 1.0, 1.0))
    starts = plan.section_starts()
    end = starts[sections[-1]] + plan.structure[sections[-1]].bars
    return Region(lane, lane, pick, sections, starts[sections[0]], end, "loop", TABLE[lane])


def test_envelope_fades_every_edge_and_follows_energy():
    plan = Plan("p", "techno", 120.0, "A minor", 1, structure=(
        Section("Intro", 4, 0.2), Section("Drop", 4, 1.0), Section("Outro", 4, 0.4)))
    grid = Grid(SR, 120.0)
    xs, ys = envelope_points(region(plan, "bass", (0, 1)), gain_db=-6.0, grid=grid, plan=plan)
    assert ys[0] == 0.0 and ys[-1] == 0.0
    assert xs[1] == round(0.005 * SR)  # bass: a 5 ms edge fade
    assert xs[-1] == grid.bar(8)
    level = lambda energy: 10 ** ((-6.0 + energy_gain_db(energy)) / 20)  # noqa: E731
    assert ys[1] == pytest.approx(level(0.2)) and ys[-2] == pytest.approx(level(1.0))
    pad_xs, _ = envelope_points(region(plan, "pad", (2,)), gain_db=0.0, grid=grid, plan=plan)
    assert pad_xs[1] == round(grid.samples_per_bar)  # sustained layers fade in over a bar
    assert pad_xs[-2] == grid.bar(11) - grid.bar(8)  # ... and the track fades out over its last
    pad_in_drop, _ = envelope_points(region(plan, "pad", (1,)), gain_db=0.0, grid=grid,
                                     plan=plan)
    assert pad_in_drop[1] == round(0.005 * SR)  # layers hit hard at a drop


def test_a_section_trim_lowers_the_region_in_that_section_only():
    plan = Plan("p", "techno", 120.0, "A minor", 1, structure=(
        Section("Intro", 4, 0.2), Section("Drop", 4, 1.0), Section("Outro", 4, 0.4)))
    grid = Grid(SR, 120.0)
    whole = region(plan, "bass", (0, 1, 2))
    trimmed = replace(whole, trims_db=((1, -12.0),))
    assert (trimmed.trim_db(0), trimmed.trim_db(1)) == (0.0, -12.0)
    xs, ys = envelope_points(whole, gain_db=-6.0, grid=grid, plan=plan)
    trim_xs, trim_ys = envelope_points(trimmed, gain_db=-6.0, grid=grid, plan=plan)
    assert np.array_equal(xs, trim_xs)
    # Points: silence, Intro, Intro, Drop, Drop, Outro, Outro, silence.
    expected = ys * np.array([1, 1, 1, 10 ** (-12 / 20), 10 ** (-12 / 20), 1, 1, 1])
    assert trim_ys == pytest.approx(expected)


def test_envelope_blocks_equal_the_interpolated_envelope():
    xs, ys = [0, 100, 5000, 5100, 9000], [0.0, 0.5, 0.5, 1.0, 0.0]
    whole = np.interp(np.arange(10_000), xs, ys)
    for start, stop in [(0, 64), (200, 4000), (4990, 5200), (5100, 8000), (8500, 10_000)]:
        block = envelope_block(xs, ys, start=start, stop=stop)
        assert np.allclose(np.broadcast_to(block, (stop - start,)), whole[start:stop])
    assert np.ndim(envelope_block(xs, ys, start=200, stop=4000)) == 0  # flat: a scalar


def test_lane_gain_brings_lanes_to_their_target_loudness():
    grid = Grid(SR, 120.0)
    audio = music_like(4.0) * 0.1
    gain = lane_gain_db(audio, target_lufs=-12.0, sample_rate=SR, grid=grid)
    assert integrated_loudness(audio * 10 ** (gain / 20), SR) == pytest.approx(-12.0, abs=0.01)
    assert lane_gain_db(np.zeros((2, SR)), target_lufs=-12.0, sample_rate=SR, grid=grid) == 0.0


def test_riding_puts_section_levels_in_energy_order():
    plan = Plan("p", "techno", 120.0, "A minor", 1, structure=(
        Section("Intro", 4, 0.3), Section("Drop", 4, 1.0), Section("Breakdown", 4, 0.5)))
    grid = Grid(SR, 120.0)
    bus = music_like(grid.bar(12) / SR)
    bus[:, :grid.bar(4)] *= 0.5
    bus[:, grid.bar(8):] *= 0.3  # a drumless breakdown, well below the intro
    edges = [0, grid.bar(4), grid.bar(8), grid.bar(12)]

    def levels():
        return [integrated_loudness(bus[:, a:b], SR) for a, b in zip(edges, edges[1:])]

    before = levels()
    assert before[2] < before[0] < before[1]
    rides = ride_sections(bus, grid=grid, plan=plan)
    after = levels()
    assert after[0] < after[2] < after[1]
    assert np.allclose(np.subtract(after, before), rides, atol=0.1)
    assert max(abs(ride) for ride in rides) <= 0.7 * 6.0 + 1e-9
    flat = Plan("p", "techno", 120.0, "A minor", 1, structure=(
        Section("A", 4, 0.5), Section("B", 4, 0.5)))
    assert ride_sections(bus[:, :grid.bar(8)], grid=grid, plan=flat) == [0.0, 0.0]


def test_sidechain_ducks_at_each_kick_and_recovers():
    kicks = np.array([1000, 23050])
    gain = duck_gain(kicks, start=0, stop=40000, sample_rate=SR)
    assert gain[999] == 1.0 and gain[:1000].min() == 1.0
    deepest = 10 ** (-DUCK_DEPTH_DB / 20)
    assert gain[1000:1000 + 2000].min() == pytest.approx(deepest, abs=1e-3)
    assert gain[1000 + round(0.3 * SR)] == 1.0
    later = duck_gain(kicks, start=20000, stop=30000, sample_rate=SR)
    assert np.allclose(later, gain[20000:30000])  # blocks agree with the whole


def test_sweep_hands_back_to_the_dry_mix_without_a_click():
    plan = Plan("p", "techno", 120.0, "A minor", 1,
                structure=(Section("Build", 4, 0.6), Section("Drop", 4, 1.0)))
    grid = Grid(SR, 120.0)
    time = np.arange(grid.bar(8)) / SR
    bus = np.tile(0.5 * np.sin(2 * np.pi * 60 * time), (2, 1)).astype(np.float32)
    dry = bus.copy()
    assert sweep_into(bus, grid=grid, plan=plan, drop=1)
    drop = grid.bar(4)
    sweep_start = grid.bar(2)
    assert np.array_equal(bus[:, :sweep_start], dry[:, :sweep_start])
    assert np.abs(bus[:, drop - grid.bar(0.5):drop - 500]).max() < 0.1  # 60 Hz filtered out
    assert click_ratio(bus, drop) < 3.0


def test_click_metric_flags_a_hard_cut():
    time = np.arange(SR) / SR
    audio = np.tile(0.3 * np.sin(2 * np.pi * 110 * time), (2, 1))
    audio[:, 20000:] = 0.0
    assert click_ratio(audio, 20000) > 20.0


# -- export ----------------------------------------------------------------------------------

def test_wav_carries_cues_and_reads_back_exactly(tmp_path):
    audio = music_like(1.0) * 0.5
    cues = [Cue(0, "Intro"), Cue(11025, "Drop"), Cue(30000, "Outro ü")]
    write_wav(tmp_path / "t.wav", audio, sample_rate=SR, bit_depth=24, cues=cues)
    assert read_cues(tmp_path / "t.wav") == cues
    data, rate = sf.read(tmp_path / "t.wav", dtype="float32")
    info = sf.info(tmp_path / "t.wav")
    assert (rate, info.subtype, info.channels) == (SR, "PCM_24", 2)
    assert np.abs(data.T - audio).max() < 2 ** -23 * 1.01  # 24-bit rounding only


@pytest.mark.parametrize(("bit_depth", "subtype"), [(16, "PCM_16"), (32, "FLOAT")])
def test_wav_writer_streams_other_depths(tmp_path, bit_depth, subtype):
    audio = music_like(0.5) * 0.5
    with WavWriter(tmp_path / "s.wav", sample_rate=SR, bit_depth=bit_depth) as writer:
        writer.write_silence(100)
        writer.write(audio[:, :5000])
        writer.write(audio[:, 5000:])
    data, _ = sf.read(tmp_path / "s.wav", dtype="float32")
    assert sf.info(tmp_path / "s.wav").subtype == subtype
    assert np.abs(data[:100]).max() == 0.0
    assert np.abs(data[100:].T - audio).max() < (2 ** -15 if bit_depth == 16 else 1e-7)
    assert read_cues(tmp_path / "s.wav") == []


def test_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "t.wav"
    target.write_bytes(b"old")
    with pytest.raises(ValueError), WavWriter(target, sample_rate=SR) as writer:
        writer.write(np.zeros((2, 10), dtype=np.float32))
        raise ValueError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.wav"]
    with pytest.raises(RenderError, match="unsupported bit depth 20"):
        WavWriter(target, sample_rate=SR, bit_depth=20)
