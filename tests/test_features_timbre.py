"""The classifier's timbre descriptors on synthesised sounds with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.ingest.features import ANALYSIS_RATE, chroma, compute_spectrum, prepare
from daemon.ingest.timbre import (
    attack_bursts,
    band_profile,
    envelope_shape,
    harmony_motion,
    low_pitch_motion,
    segment_timbre,
    texture,
    timbre_vector,
)
from daemon.synth.fx import synth_crackle

RATE = ANALYSIS_RATE
T = np.arange(RATE) / RATE  # one second


def _tone(freqs_hz: np.ndarray, decay_s: float) -> np.ndarray:
    """A sine following `freqs_hz` (one value per sample) with an exponential decay."""
    return (np.sin(2 * np.pi * np.cumsum(freqs_hz) / RATE) * np.exp(-T[:freqs_hz.size] / decay_s)
            ).astype(np.float32)


def _bursts(count: int, gap_s: float, rng: np.random.Generator) -> np.ndarray:
    """`count` noise bursts `gap_s` apart, each decaying in 2 ms, then a 100 ms tail."""
    out = np.zeros(RATE // 2, dtype=np.float32)
    for index in range(count):
        start = round(index * gap_s * RATE)
        length = RATE // 50
        out[start:start + length] += (rng.standard_normal(length)
                                      * np.exp(-np.arange(length) / (0.002 * RATE)))
    tail = round((count - 1) * gap_s * RATE)
    out[tail:] += 0.3 * rng.standard_normal(out.size - tail) * np.exp(
        -np.arange(out.size - tail) / (0.1 * RATE))
    return out


def test_envelope_shape_of_an_exponential_decay() -> None:
    """A 2 kHz tone decaying with a 100 ms time constant: -6/-20/-40 dB after
    0.1 ln 2, 0.1 ln 10 and 0.2 ln 10 seconds, 63 % of its energy in the first 50 ms."""
    tone = _tone(np.full(RATE, 2000.0), 0.1)
    shape = envelope_shape(mono=tone, sample_rate=RATE)
    decays = 10 ** shape[:3] - 1e-3
    assert decays == pytest.approx([0.0693, 0.2303, 0.4605], abs=0.003)
    assert 10 ** shape[3] - 1e-3 == pytest.approx(0.0, abs=0.002)  # starts at its peak
    assert shape[4:6] == pytest.approx([1 - np.exp(-1), 1 - np.exp(-4)], abs=0.02)
    assert shape[6:] == pytest.approx([0.2303, 0.4605], abs=0.005)  # time above -20/-40 dB


def test_segment_timbre_follows_a_kick_from_click_to_boom() -> None:
    rng = np.random.default_rng(0)
    kick = (np.sin(2 * np.pi * 60.0 * T) * np.exp(-T / 0.3)  # boom: 60 Hz, 300 ms
            + rng.standard_normal(T.size) * np.exp(-T / 0.01)).astype(np.float32)  # click
    timbre = segment_timbre(spectrum=compute_spectrum(y=kick))
    attack, decay, levels = timbre[:12], timbre[24:36], timbre[-4:]
    assert decay[0] - attack[0] > 5.0  # coefficient 1, the tilt: the decay is all bass
    assert list(levels) == sorted(levels, reverse=True) and levels[3] < -20.0
    click = segment_timbre(spectrum=compute_spectrum(y=kick[: int(0.1 * RATE)]))
    assert click[-2:].tolist() == [-60.0, -60.0]  # 100 ms reach no decay and no tail...
    assert not click[24:48].any()  # ...so their shapes read as silence


def test_band_profile_puts_a_sub_tone_in_the_sub_band_and_times_its_decay() -> None:
    sub = band_profile(spectrum=compute_spectrum(y=_tone(np.full(RATE, 45.0), 0.2)))
    shares, decays = 10 ** sub[:7] - 1e-4, 10 ** sub[7:] - 0.01
    assert shares[0] > 0.9 and shares[4:].max() < 0.01  # below 60 Hz, nothing up top
    # 20 dB down when exp(-2 t / 0.2) = 0.01: t = 0.1 ln 100 = 0.46 s, within a frame or two
    assert decays[0] == pytest.approx(0.46, abs=0.05)
    held = band_profile(spectrum=compute_spectrum(y=np.sin(2 * np.pi * 45.0 * T)))
    assert 10 ** held[7] - 0.01 > 0.9  # a held tone never falls 20 dB: it lasts the clip


def test_low_pitch_motion_tells_a_kick_sweep_from_a_steady_bass_note() -> None:
    sweep = 55.0 * (1.0 + 2.0 * np.exp(-T / 0.03))  # 165 Hz falling to 55 Hz
    kick = low_pitch_motion(mono=_tone(sweep, 0.4), sample_rate=RATE)
    bass = low_pitch_motion(mono=_tone(np.full(RATE, 55.0), 2.0), sample_rate=RATE)
    assert kick[0] > 8.0 and bass[0] == pytest.approx(0.0, abs=0.5)  # glide, semitones
    assert bass[1] < 0.2  # jitter: a steady tone
    assert bass[2] == pytest.approx(0.0, abs=0.05)  # height: log2(55 Hz / 55 Hz)
    hiss = np.random.default_rng(1).standard_normal(RATE).astype(np.float32)
    hat = np.diff(np.diff(hiss)) * np.exp(-T[:-2] / 0.05)  # high-passed noise, no low tone
    assert low_pitch_motion(mono=hat, sample_rate=RATE).tolist() == [0.0, 6.0, 0.0]


def test_attack_bursts_count_a_claps_hands() -> None:
    rng = np.random.default_rng(2)
    clap = attack_bursts(mono=_bursts(4, 0.011, rng), sample_rate=RATE)
    snare = attack_bursts(mono=_bursts(1, 0.011, rng), sample_rate=RATE)
    assert clap[0] == 4 and 10 ** clap[1] - 1 == pytest.approx(33.0, abs=3.0)  # ms
    assert snare.tolist() == [1.0, 0.0]


def test_harmony_motion_tells_chords_from_arpeggios() -> None:
    frames = 100
    chord = np.zeros((12, frames))
    chord[[0, 4, 7]] = 1.0  # C major held
    arpeggio = np.zeros((12, frames))
    arpeggio[[0, 4, 7][0], 0::3] = arpeggio[4, 1::3] = arpeggio[7, 2::3] = 1.0
    energy = np.ones(frames)
    held = harmony_motion(chroma_frames=chord, frame_energy=energy, frame_rate=43.0)
    moving = harmony_motion(chroma_frames=arpeggio, frame_energy=energy, frame_rate=43.0)
    assert held.tolist() == pytest.approx([3.0, 0.0, 1.0])
    assert moving[0] == pytest.approx(1.0) and moving[1] == pytest.approx(np.log1p(43.0))
    assert moving[2] == pytest.approx(0.0)  # consecutive frames share no pitch class


def test_texture_hears_crackle_as_many_clicks_and_a_steady_level() -> None:
    crackle = synth_crackle(sample_rate=RATE, seconds=4.0, seed=3).mean(axis=0)
    rng = np.random.default_rng(4)
    hit = (rng.standard_normal(RATE) * np.exp(-T / 0.05)).astype(np.float32)
    bed = texture(spectrum=compute_spectrum(y=crackle), mono=crackle)
    one_shot = texture(spectrum=compute_spectrum(y=hit), mono=hit)
    assert np.expm1(bed[1]) > 20.0 and np.expm1(one_shot[1]) < 3.0  # clicks per second
    assert bed[0] < one_shot[0]  # level spread over frames, dB
    assert one_shot[2:] == pytest.approx([1.0, 1.0, 1.0], abs=0.5)  # noise is flat


def test_timbre_vector_is_gain_independent_and_fixed_length() -> None:
    rng = np.random.default_rng(5)
    clip = (rng.standard_normal(RATE) * np.exp(-T / 0.2)).astype(np.float32)
    vectors = []
    for gain in (1.0, 0.01):
        spectrum = compute_spectrum(y=clip * gain)
        vectors.append(timbre_vector(spectrum=spectrum, mono=clip * gain,
                                     chroma_frames=chroma(spectrum=spectrum)))
    assert vectors[0].shape == (87,)
    np.testing.assert_allclose(vectors[0], vectors[1], rtol=1e-3, atol=1e-3)
    full = prepare(audio=clip[None, :], sample_rate=RATE).vector
    assert full.dtype == np.float32 and np.all(np.isfinite(full))
