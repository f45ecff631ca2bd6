"""What the category classifier hears: envelope, band and pitch-motion descriptors (pure).

Each function reads the stem's shared power spectrum (`features.compute_spectrum`, passed in
as any object with its fields) or its mono signal at the analysis rate, and returns a short
fixed-length float array; `timbre_vector` joins them. They target the confusions real
recordings showed (issue 12): a kick's falling pitch against a bass note's steady one and
its sub band decaying against a bass holding; a clap's several attacks against a snare's
one; a hat's short noise band against a cymbal's long ringing one; a chord's several
pitch classes against a lead's one and an arpeggio's fast-changing one; a pad's steady
harmony against an atmosphere's noise; a crackle bed's many tiny clicks against a one-shot.
"""

from __future__ import annotations

import functools
from typing import Protocol

import numpy as np
import scipy.fft
import scipy.signal

from daemon.embed.spectral import mel_filterbank

_TINY = 1e-12  # keeps logs and divisions finite on digital silence
#: Sub, low, low-mid, mid, presence, high and air bands (Hz) of `band_profile`.
_BAND_EDGES_HZ = (0.0, 60.0, 150.0, 400.0, 1200.0, 3500.0, 7000.0)
_DECAY_DB = (-6.0, -20.0, -40.0)  # half level, "gone" in a mix, inaudible
_EARLY_S = (0.05, 0.2)  # a click, a drum's body
#: Attack (a kick's click), body (its boom), decay and tail, in seconds from the start.
_SEGMENT_EDGES_S = (0.0, 0.05, 0.2, 0.8)
_SEGMENT_BANDS, _SEGMENT_COEFFICIENTS = 24, 12
_FLOOR_DB = -60.0  # segments and levels below this read as silence
_PITCH_WINDOW_S = 0.4  # a kick's sweep and a bass note's start both fit in it
_UNPITCHED_JITTER = 6.0  # semitones: what `low_pitch_motion` reports without a low tone
_BURST_WINDOW_S = 0.08  # a clap's hands all land within 80 ms


class SpectrumLike(Protocol):
    """The fields of `features.Spectrum` these functions read."""

    power: np.ndarray  # (bins, frames)
    sample_rate: int
    n_fft: int
    hop: int


def millisecond_envelope(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Peak magnitude per 1 ms block ``(n // block,)`` (one zero block for shorter input),
    and the block size in samples."""
    block = max(1, sample_rate // 1000)
    usable = mono[: mono.size - mono.size % block]
    if usable.size == 0:
        return np.zeros(1, dtype=np.float32), block
    return np.abs(usable).reshape(-1, block).max(axis=1), block


def _onset_sample(mono: np.ndarray) -> int:
    """First sample within 40 dB of the peak: where the sound starts."""
    magnitude = np.abs(mono)
    return int(np.argmax(magnitude >= 0.01 * magnitude.max())) if magnitude.size else 0


def envelope_shape(*, mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """Eight numbers on how the 1 ms peak envelope rises and falls.

    log10 seconds (+1 ms) from the peak until the envelope first drops `_DECAY_DB` below it
    (the remaining length if it never does) and from the first sample within 40 dB of the
    peak to the peak; the shares of energy in the first `_EARLY_S` after that start; the
    shares of time within 20 and 40 dB of the peak. Hats die in 50 ms, toms ring for 300,
    bass notes hold, pads swell.
    """
    envelope, block = millisecond_envelope(mono, sample_rate)
    level_db = 20.0 * np.log10((envelope + _TINY) / (envelope.max() + _TINY))
    peak = int(np.argmax(level_db))
    after = level_db[peak:]
    decays = [np.argmax(after < drop) if np.any(after < drop) else after.size
              for drop in _DECAY_DB]
    start = int(np.argmax(level_db > -40.0))
    seconds = block / sample_rate  # per envelope block
    energy = np.square(envelope[start:], dtype=np.float64)
    early = [energy[:max(1, round(limit / seconds))].sum() / (energy.sum() + _TINY)
             for limit in _EARLY_S]
    return np.array([*np.log10(np.array([*decays, peak - start]) * seconds + 1e-3), *early,
                     np.mean(level_db > -20.0), np.mean(level_db > -40.0)])


def segment_timbre(*, spectrum: SpectrumLike) -> np.ndarray:
    """Spectral shape and level of the attack, body, decay and tail of a stem (52 numbers).

    The stretches start at `_SEGMENT_EDGES_S` after the first frame within 30 dB of the
    loudest; each gives cepstral coefficients 1-12 of its mean 24-band log-mel spectrum
    (shape only: coefficient 0, the gain, is dropped) and its mean level against the
    loudest frame in dB. A stretch the stem does not reach reads as silence: zero shape,
    `_FLOOR_DB`. One-shots differ most in how the spectrum moves in the first second.
    """
    energy = spectrum.power.sum(axis=0)
    start = int(np.argmax(energy >= 1e-3 * energy.max()))
    mel = mel_filterbank(sample_rate=spectrum.sample_rate, n_fft=spectrum.n_fft,
                         n_mels=_SEGMENT_BANDS) @ spectrum.power[:, start:]
    loudest = mel.sum(axis=0).max() + _TINY
    frame_rate = spectrum.sample_rate / spectrum.hop
    bounds = [round(edge * frame_rate) for edge in _SEGMENT_EDGES_S] + [mel.shape[1]]
    shapes, levels = [], []
    for first, stop in zip(bounds[:-1], bounds[1:]):
        stretch = mel[:, first:max(first + 1, stop)]
        power = stretch.sum(axis=0).mean() if stretch.size else 0.0
        level = 10.0 * np.log10(power / loudest + _TINY)
        if level < _FLOOR_DB:
            shapes.append(np.zeros(_SEGMENT_COEFFICIENTS))
            levels.append(_FLOOR_DB)
            continue
        cepstrum = scipy.fft.dct(np.log10(stretch.mean(axis=1) + _TINY), norm="ortho")
        shapes.append(cepstrum[1:_SEGMENT_COEFFICIENTS + 1])
        levels.append(level)
    return np.concatenate([*shapes, levels])


def band_profile(*, spectrum: SpectrumLike) -> np.ndarray:
    """Share and decay of the seven `_BAND_EDGES_HZ` bands (14 numbers).

    log10 of each band's share of the total power (+1e-4), then log10 seconds (+10 ms) from
    the band's first frame within 1 dB of its loudest until it falls 20 dB below that (the
    rest of the stem if it never does). A kick's sub band is gone in a
    few hundred ms while a bass note's holds; a hat's high band dies in 50 ms, a cymbal's
    rings for seconds.
    """
    freqs = np.fft.rfftfreq(spectrum.n_fft, 1.0 / spectrum.sample_rate)
    starts = np.searchsorted(freqs, _BAND_EDGES_HZ)
    bands = np.add.reduceat(spectrum.power, starts, axis=0).astype(np.float64)
    totals = bands.sum(axis=1)
    shares = np.log10(totals / (totals.sum() + _TINY) + 1e-4)
    seconds = spectrum.hop / spectrum.sample_rate
    decays = []
    for band in bands:
        peak = int(np.argmax(band >= 0.8 * band.max()))  # first frame within 1 dB of the top
        below = np.flatnonzero(band[peak:] < 0.01 * band[peak])
        decays.append((below[0] if below.size else band.size - peak) * seconds)
    return np.concatenate([shares, np.log10(np.array(decays) + 0.01)])


def low_pitch_motion(*, mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """Glide, jitter and height of the low tone below 300 Hz in the first 0.4 s (3 numbers).

    Each cycle of the low-passed signal between upward zero crossings gives one frequency;
    cycles under a tenth of the low-passed peak are left out. Glide: semitones from the
    first 30 ms down to the median of 60-400 ms (a kick sweeps one or two octaves, a tom a
    few semitones, a bass note none). Jitter: median semitone change from cycle to cycle
    after 60 ms (a steady tone near 0). Height: log2 of that median over 55 Hz. Without a
    low tone (its low-passed peak 12 dB or more under the broadband one, as in hats, noise
    and cymbals with some rumble or bleed under them; or too few strong cycles) it reads
    as unpitched: glide 0, jitter `_UNPITCHED_JITTER`, height 0.
    """
    start = _onset_sample(mono)
    stretch = mono[start:start + round(_PITCH_WINDOW_S * sample_rate)].astype(np.float64)
    unpitched = np.array([0.0, _UNPITCHED_JITTER, 0.0])
    if stretch.size < sample_rate // 20:  # under 50 ms: no low cycle fits
        return unpitched
    low = scipy.signal.sosfilt(_filter(4, 300.0, "lowpass", sample_rate), stretch)
    ups = np.flatnonzero((low[:-1] < 0.0) & (low[1:] >= 0.0))
    if ups.size < 4 or np.abs(low).max() < 0.25 * np.abs(stretch).max():
        return unpitched
    times = (ups + low[ups] / (low[ups] - low[ups + 1])) / sample_rate  # sub-sample
    strong = np.array([np.abs(low[a:b]).max() for a, b in zip(ups[:-1], ups[1:] + 1)])
    keep = strong >= 0.1 * np.abs(low).max()
    hz, middle = 1.0 / np.diff(times)[keep], (0.5 * (times[:-1] + times[1:]))[keep]
    early, late = hz[middle < 0.03], hz[(middle >= 0.06)]
    if late.size < 3:
        return unpitched
    glide = 12.0 * np.log2(np.median(early) / np.median(late)) if early.size else 0.0
    jitter = float(np.median(np.abs(np.diff(12.0 * np.log2(late)))))
    return np.array([glide, jitter, np.log2(np.median(late) / 55.0)])


def attack_bursts(*, mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """How many separate attacks the first 80 ms hold, and their spread (2 numbers).

    The level of the signal above 1 kHz in 1 ms blocks, smoothed over 3 ms (noise flickers
    faster than hands clap). An attack is a local maximum within 15 dB of the loudest,
    and it counts as a new one only if the level fell 6 dB below both it and the previous
    attack in between. A clap is three or four hands 5-15 ms apart; a snare, a hat or a
    kick is one. Spread: log10 ms (+1) from the first attack to the last.
    """
    start = _onset_sample(mono)
    stretch = mono[start:start + round(_BURST_WINDOW_S * sample_rate)].astype(np.float64)
    block = max(1, sample_rate // 1000)
    if stretch.size < 4 * block:
        return np.array([1.0, 0.0])
    high = scipy.signal.sosfilt(_filter(2, 1000.0, "highpass", sample_rate), stretch)
    blocks = np.square(high[: high.size - high.size % block]).reshape(-1, block).mean(axis=1)
    level = 10.0 * np.log10(np.convolve(blocks, np.ones(3) / 3, mode="same") + _TINY)
    local_max = (level >= np.maximum.accumulate(level) - 15.0)  # within 15 dB of the loudest
    peaks: list[int] = []
    for index in np.flatnonzero(local_max):
        if level[index] < level[max(0, index - 2):index + 3].max():
            continue
        if peaks and level[peaks[-1]:index + 1].min() > min(level[peaks[-1]], level[index]) - 6:
            if level[index] > level[peaks[-1]]:
                peaks[-1] = index  # the same attack, still rising
            continue
        peaks.append(int(index))
    loudest = level.max()
    peaks = [index for index in peaks if level[index] >= loudest - 15.0]
    spread_ms = (peaks[-1] - peaks[0]) * block * 1000.0 / sample_rate if peaks else 0.0
    return np.array([float(max(1, len(peaks))), np.log10(spread_ms + 1.0)])


def harmony_motion(*, chroma_frames: np.ndarray, frame_energy: np.ndarray,
                   frame_rate: float) -> np.ndarray:
    """Polyphony, pitch-change rate and harmonic steadiness from per-frame chroma (3 numbers).

    Over frames within 30 dB of the loudest: the energy-weighted mean count of pitch classes
    at half the frame's strongest or more (a chord 3-4, a lead or bass 1-2); log(1 + changes
    of the strongest pitch class per second) (an arpeggio changes with every note, a pad
    with every chord); the mean cosine similarity of consecutive chroma frames (a pad holds
    near 1, noise and drums wander).
    """
    active = frame_energy >= 1e-3 * (frame_energy.max() + _TINY)
    frames = chroma_frames[:, active].astype(np.float64)
    if frames.shape[1] < 2 or frames.max() <= 0.0:
        return np.array([0.0, 0.0, 0.0])
    peak = frames.max(axis=0) + _TINY
    counts = np.sum(frames >= 0.5 * peak, axis=0)
    polyphony = float(np.average(counts, weights=frame_energy[active] + _TINY))
    strongest = frames.argmax(axis=0)
    changes = np.mean(strongest[1:] != strongest[:-1]) * frame_rate
    unit = frames / (np.linalg.norm(frames, axis=0) + _TINY)
    steadiness = float(np.mean(np.sum(unit[:, 1:] * unit[:, :-1], axis=0)))
    return np.array([polyphony, np.log1p(changes), steadiness])


def texture(*, spectrum: SpectrumLike, mono: np.ndarray) -> np.ndarray:
    """Level steadiness, click rate and noisiness of three bands (5 numbers).

    Standard deviation (dB) of the frame level within 40 dB of the loudest (a pad or a noise
    bed is steady, a one-shot falls away); log(1 + clicks per second), a click being a 1 ms
    block of the first difference above four times its 25 ms neighbourhood and a tenth of
    the loudest (vinyl crackle: dozens a second, a one-shot: one); spectral flatness of the
    150-1200 Hz, 1.2-3.5 kHz and 3.5 kHz-Nyquist bands (noise 1, partials near 0).
    """
    energy = spectrum.power.sum(axis=0)
    active = energy >= 1e-4 * (energy.max() + _TINY)
    steadiness = float(np.std(10.0 * np.log10(energy[active] + _TINY)))
    envelope, block = millisecond_envelope(np.diff(mono), spectrum.sample_rate)
    width = min(25, envelope.size)  # 25 ms, or all of a shorter clip
    neighbourhood = np.convolve(envelope, np.ones(width) / width, mode="same")
    clicks = np.sum((envelope > 4.0 * neighbourhood) & (envelope > 0.1 * envelope.max()))
    duration = max(mono.size / spectrum.sample_rate, 0.5)  # short clips count as 0.5 s
    freqs = np.fft.rfftfreq(spectrum.n_fft, 1.0 / spectrum.sample_rate)
    power = spectrum.power[:, active].astype(np.float64) + _TINY
    flatness = []
    for low, high in ((150.0, 1200.0), (1200.0, 3500.0), (3500.0, np.inf)):
        band = power[(freqs >= low) & (freqs < high)]
        per_frame = np.exp(np.mean(np.log(band), axis=0)) / np.mean(band, axis=0)
        flatness.append(float(np.average(per_frame, weights=band.sum(axis=0))))
    return np.array([steadiness, np.log1p(clicks / duration), *flatness])


def timbre_vector(*, spectrum: SpectrumLike, mono: np.ndarray,
                  chroma_frames: np.ndarray) -> np.ndarray:
    """All of the above, in order: `envelope_shape` (8), `segment_timbre` (52),
    `band_profile` (14), `low_pitch_motion` (3), `attack_bursts` (2), `harmony_motion` (3)
    and `texture` (5): 87 float64 numbers, independent of the stem's gain."""
    energy = spectrum.power.sum(axis=0)
    return np.concatenate([
        envelope_shape(mono=mono, sample_rate=spectrum.sample_rate),
        segment_timbre(spectrum=spectrum),
        band_profile(spectrum=spectrum),
        low_pitch_motion(mono=mono, sample_rate=spectrum.sample_rate),
        attack_bursts(mono=mono, sample_rate=spectrum.sample_rate),
        harmony_motion(chroma_frames=chroma_frames, frame_energy=energy,
                       frame_rate=spectrum.sample_rate / spectrum.hop),
        texture(spectrum=spectrum, mono=mono),
    ])


@functools.cache
def _filter(order: int, cutoff: float, kind: str, sample_rate: int) -> np.ndarray:
    """A Butterworth filter's second-order sections, designed once per sample rate (the
    design cost as much as the filtering of a one-shot)."""
    return scipy.signal.butter(order, cutoff, btype=kind, fs=sample_rate, output="sos")
