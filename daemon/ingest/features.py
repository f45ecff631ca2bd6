"""The shared spectrum and the named descriptors computed from it (pure functions).

Every stem is folded to mono, resampled to `ANALYSIS_RATE` and transformed once by
`compute_spectrum`; chroma, spectral shape, onsets and the classifier's vector all read that
one `Spectrum`. Only the tempo estimator (which needs a finer hop) takes its own transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
import soxr

#: One analysis rate makes every descriptor independent of the file's rate; 22.05 kHz keeps
#: content up to 11 kHz, plenty for shape descriptors, and halves the cost of 44.1 kHz.
ANALYSIS_RATE = 22050
N_FFT = 2048  # 93 ms window: 10.8 Hz bins, fine enough to interpolate bass partials
HOP = 512  # 23 ms hop: four hops per window
_BLOCK = 512  # frames per FFT block, bounds memory on long files
_TINY = 1e-12  # keeps logs and divisions finite on digital silence
#: Every descriptor name an `Analysis` carries: `describe` computes the spectral and
#: temporal ones, `daemon.ingest.analyse` adds the level ones (``*_db``, ``clip_ratio``).
DESCRIPTOR_NAMES = (
    "duration_s", "centroid_hz", "bandwidth_hz", "rolloff_hz", "flatness", "low_ratio",
    "high_ratio", "onset_rate", "width", "attack_s", "tail_db", "temporal_centroid", "sustain",
    "zcr", "tonalness", "pitch_classes", "hf_peakiness_db",
    "peak_db", "rms_db", "crest_db", "clip_ratio",
)


@dataclass(frozen=True)
class Spectrum:
    """Power spectrogram ``(bins, frames)`` of a mono signal at `sample_rate`."""

    power: np.ndarray
    sample_rate: int
    n_fft: int
    hop: int

    @property
    def freqs(self) -> np.ndarray:
        return np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def frame_energy(self) -> np.ndarray:
        return self.power.sum(axis=0)


def to_analysis_rate(*, y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample `y` (``(n,)`` or ``(channels, n)``) to `ANALYSIS_RATE` with soxr."""
    y = np.asarray(y, dtype=np.float32)
    if sample_rate == ANALYSIS_RATE:
        return y
    if y.ndim == 1:
        return soxr.resample(y, sample_rate, ANALYSIS_RATE).astype(np.float32)
    return soxr.resample(y.T, sample_rate, ANALYSIS_RATE).T.astype(np.float32)


def fold_to_stereo(audio: np.ndarray) -> np.ndarray:
    """Fold ``(channels, n)`` to at most two channels.

    Surround layouts alternate left and right (L R C LFE Ls Rs), so even channels sum to
    the left and odd ones to the right; a mono file stays mono.
    """
    if audio.shape[0] <= 2:
        return audio
    return np.stack([audio[0::2].mean(axis=0), audio[1::2].mean(axis=0)])


def compute_spectrum(*, y: np.ndarray, sample_rate: int = ANALYSIS_RATE, n_fft: int = N_FFT,
                     hop: int = HOP) -> Spectrum:
    """Hann-windowed power STFT of mono `y`, centred (padded by ``n_fft // 2``)."""
    y = np.asarray(y, dtype=np.float32)
    padded = np.pad(y, n_fft // 2)
    if padded.size < n_fft:
        padded = np.pad(padded, (0, n_fft - padded.size))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = _hann(n_fft)
    blocks = [np.abs(np.fft.rfft(frames[start:start + _BLOCK] * window, axis=1)) ** 2
              for start in range(0, len(frames), _BLOCK)]
    power = np.concatenate(blocks).T.astype(np.float32)
    return Spectrum(power=power, sample_rate=sample_rate, n_fft=n_fft, hop=hop)


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann


def onset_strength(*, spectrum: Spectrum) -> np.ndarray:
    """Spectral flux: summed positive change of log-compressed magnitude per frame."""
    compressed = np.log1p(1000.0 * np.sqrt(spectrum.power))  # gamma 1000: log-like, finite
    flux = np.maximum(np.diff(compressed, axis=1, prepend=compressed[:, :1]), 0.0)
    return flux.sum(axis=0)


def count_onsets(*, envelope: np.ndarray, frame_rate: float) -> int:
    """Peaks of `envelope` above an adaptive threshold, at least 50 ms apart."""
    if envelope.size < 3 or envelope.max() <= 0:
        return 0
    width = min(envelope.size, max(1, int(round(0.25 * frame_rate))))  # 250 ms local mean
    local = np.convolve(envelope, np.ones(width) / width, mode="same")
    floor = 0.1 * envelope.max()  # ignore ripples under a tenth of the strongest onset
    peak = (envelope[1:-1] > envelope[:-2]) & (envelope[1:-1] >= envelope[2:])
    peak &= (envelope[1:-1] > 1.5 * local[1:-1]) & (envelope[1:-1] > floor)
    frames = np.flatnonzero(peak) + 1
    gap = max(1, int(0.05 * frame_rate))  # 50 ms: faster repeats are one onset (flams)
    kept = [frames[0]] if frames.size else []
    for frame in frames[1:]:
        if frame - kept[-1] >= gap:
            kept.append(frame)
    return len(kept)


def chroma(*, spectrum: Spectrum, low_hz: float = 40.0, high_hz: float = 5000.0) -> np.ndarray:
    """Pitch-class profile ``(12, frames)``, index 0 = C, from interpolated spectral peaks.

    Like HPCP: each local maximum's frequency is refined by parabolic interpolation of the
    log power (accurate to a few cents even in 10.8 Hz bins) and its magnitude is added to
    the nearest pitch class, weighted by cos^2 of its detuning; A4 = 440 Hz.
    """
    power = spectrum.power
    log_power = np.log(power + _TINY)
    bins = np.arange(power.shape[0])[:, None]
    band = (bins * spectrum.sample_rate / spectrum.n_fft > low_hz) & (
        bins * spectrum.sample_rate / spectrum.n_fft < high_hz)
    loud = power > power.max(axis=0, keepdims=True) * 1e-5  # within 50 dB of the frame peak
    peaks = np.zeros_like(power, dtype=bool)
    peaks[1:-1] = (power[1:-1] > power[:-2]) & (power[1:-1] >= power[2:])
    k, t = np.nonzero(peaks & band & loud)
    left, mid, right = log_power[k - 1, t], log_power[k, t], log_power[k + 1, t]
    curvature = left - 2 * mid + right
    offset = np.where(curvature < 0, 0.5 * (left - right) / np.minimum(curvature, -_TINY), 0.0)
    hz = (k + np.clip(offset, -0.5, 0.5)) * spectrum.sample_rate / spectrum.n_fft
    semitone = 12.0 * np.log2(hz / 440.0) + 9.0  # semitones above C (A = 9)
    nearest = np.round(semitone)
    weight = np.sqrt(power[k, t]) * np.cos(np.pi * (semitone - nearest)) ** 2
    profile = np.zeros((12, power.shape[1]), dtype=np.float64)
    np.add.at(profile, (nearest.astype(int) % 12, t), weight)
    return profile.astype(np.float32)


def key_chroma(*, y: np.ndarray) -> np.ndarray:
    """Summed chroma ``(12,)`` of mono `y` at `ANALYSIS_RATE`, for key estimation only.

    A separate 186 ms transform: bass notes of sixteenth length amplitude-modulate the
    93 ms frames of the shared spectrum, and the modulation sidebands pull a 49 Hz
    fundamental a semitone flat; 2.7x finer bins resolve them (synthesised tonal loops:
    MIREX score 0.83 -> 0.90). Only tonal stems without a key in their name pay for it.
    """
    spectrum = compute_spectrum(y=y, n_fft=4096, hop=1024)
    return chroma(spectrum=spectrum).sum(axis=1)


@lru_cache(maxsize=4)
def mel_filters(*, sample_rate: int, n_fft: int, bands: int) -> np.ndarray:
    """Triangular mel filterbank ``(bands, bins)`` (Slaney scale, as librosa defaults)."""
    import librosa  # only the filter design; cached, so the import cost is paid once

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=bands).astype(np.float32)


def band_ratio(*, spectrum: Spectrum, low_hz: float = 0.0, high_hz: float = np.inf) -> float:
    """Share of the total power between `low_hz` and `high_hz`."""
    freqs = spectrum.freqs
    total = spectrum.power.sum() + _TINY
    inside = (freqs >= low_hz) & (freqs < high_hz)
    return float(spectrum.power[inside].sum() / total)


def describe(*, spectrum: Spectrum, stereo: np.ndarray, pitch: np.ndarray) -> dict[str, float]:
    """Named scalar descriptors of a stem (level-independent except where named ``_db``).

    `stereo` is the ``(channels, n)`` signal at the spectrum's rate (for width, attack and
    zero crossings); `spectrum` is the shared spectrum of its mono fold and `pitch` its
    summed 12-bin chroma.
    """
    mono = stereo.mean(axis=0)
    duration = mono.size / spectrum.sample_rate
    energy = spectrum.frame_energy
    onsets = count_onsets(envelope=onset_strength(spectrum=spectrum),
                          frame_rate=spectrum.frame_rate)
    return {
        "duration_s": duration,
        **_shape(spectrum),
        "flatness": _flatness(spectrum),
        "low_ratio": band_ratio(spectrum=spectrum, high_hz=150.0),  # kick and sub territory
        "high_ratio": band_ratio(spectrum=spectrum, low_hz=5000.0),  # hats, air, fizz
        "onset_rate": onsets / max(duration, 0.5),  # per second; short clips count as 0.5 s
        "width": _width(stereo),
        "attack_s": _attack(mono, spectrum.sample_rate),
        "tail_db": _tail_db(energy),
        "temporal_centroid": float(np.average(np.linspace(0, 1, energy.size),
                                              weights=energy + _TINY)),
        "sustain": float(np.mean(energy > 0.1 * energy.max())),  # frames within 10 dB
        "zcr": float(np.mean(np.abs(np.diff(np.signbit(mono).astype(np.int8))))),
        "tonalness": 1.0 - _geometric_over_arithmetic(pitch),
        "pitch_classes": float(np.sum(pitch >= 0.5 * pitch.max())) if pitch.max() > 0 else 0.0,
        "hf_peakiness_db": _band_crest_db(spectrum, 2000.0, 8000.0),
    }


def _shape(spectrum: Spectrum) -> dict[str, float]:
    freqs = spectrum.freqs
    magnitude = np.sqrt(spectrum.power).mean(axis=1) + _TINY
    centroid = float(np.sum(freqs * magnitude) / magnitude.sum())
    spread = float(np.sqrt(np.sum((freqs - centroid) ** 2 * magnitude) / magnitude.sum()))
    cumulative = np.cumsum(spectrum.power.mean(axis=1))
    rolloff = float(freqs[np.searchsorted(cumulative, 0.85 * cumulative[-1])])  # 85 % point
    return {"centroid_hz": centroid, "bandwidth_hz": spread, "rolloff_hz": rolloff}


def _flatness(spectrum: Spectrum) -> float:
    """Energy-weighted mean of per-frame Wiener entropy: 1 = white noise, 0 = pure tone."""
    per_frame = np.exp(np.mean(np.log(spectrum.power + _TINY), axis=0)) / (
        spectrum.power.mean(axis=0) + _TINY)
    return float(np.average(per_frame, weights=spectrum.frame_energy + _TINY))


def _geometric_over_arithmetic(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=np.float64) + _TINY
    return float(np.exp(np.mean(np.log(values))) / np.mean(values))


def _width(stereo: np.ndarray) -> float:
    """Side energy over total energy: 0 = mono, 0.5 = uncorrelated, 1 = out of phase."""
    if stereo.shape[0] < 2:
        return 0.0
    mid = 0.5 * (stereo[0] + stereo[1])
    side = 0.5 * (stereo[0] - stereo[1])
    side_energy = float(np.dot(side, side))
    return side_energy / (float(np.dot(mid, mid)) + side_energy + _TINY)


def _attack(mono: np.ndarray, sample_rate: int) -> float:
    """Seconds from the first sample within 40 dB of the peak until the 1 ms envelope
    first reaches half the peak (-6 dB): the rise time of the opening event."""
    envelope, block = _millisecond_envelope(mono, sample_rate)
    peak = envelope.max()
    start = int(np.argmax(envelope >= 0.01 * peak))  # -40 dB
    rise = int(np.argmax(envelope >= 0.5 * peak))
    return (rise - start) * block / sample_rate


def _millisecond_envelope(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """Peak magnitude per 1 ms block (one zero block for shorter input), and the block size."""
    block = max(1, sample_rate // 1000)
    usable = mono[: mono.size - mono.size % block]
    if usable.size == 0:
        return np.zeros(1, dtype=np.float32), block
    return np.abs(usable).reshape(-1, block).max(axis=1), block


def _tail_db(energy: np.ndarray) -> float:
    """Loudest frame of the final 10 % against the loudest overall, in dB (<= 0)."""
    tail = energy[-max(1, energy.size // 10):]
    return float(10.0 * np.log10((tail.max() + _TINY) / (energy.max() + _TINY)))


def _band_crest_db(spectrum: Spectrum, low_hz: float, high_hz: float) -> float:
    """Peak over mean of the long-term spectrum in a band: ringing partials read high."""
    freqs = spectrum.freqs
    band = spectrum.power.mean(axis=1)[(freqs >= low_hz) & (freqs < high_hz)] + _TINY
    return float(10.0 * np.log10(band.max() / band.mean()))


_MEL_BANDS = 32  # enough to separate kick, snare body, hat and cymbal regions
_VECTOR_DESCRIPTORS = ("flatness", "low_ratio", "high_ratio", "onset_rate", "width",
                       "tail_db", "temporal_centroid", "sustain", "zcr", "tonalness",
                       "pitch_classes", "hf_peakiness_db")
_DECAY_DB = (-6.0, -20.0, -40.0)  # half level, "gone" in a mix, inaudible
_EARLY_S = (0.05, 0.2)  # a click, a drum's body
#: Attack (a kick's click), body (its boom), decay and tail, in seconds from the start.
_SEGMENT_EDGES_S = (0.0, 0.05, 0.2, 0.8)
_SEGMENT_BANDS, _SEGMENT_COEFFICIENTS = 24, 12
_FLOOR_DB = -60.0  # segments and levels below this read as silence
#: Bump when the vector's definition changes so cached classifiers are retrained.
#: 2: added `envelope_shape` and `segment_timbre` (lmms cross-validated accuracy +6 points).
FEATURE_VERSION = 2


def feature_vector(*, spectrum: Spectrum, descriptors: dict[str, float],
                   mono: np.ndarray) -> np.ndarray:
    """Fixed-length float32 vector for the category classifier (gain-independent).

    Mean and spread of 32 log-mel bands (relative to their own average, so gain cancels),
    log-frequency shape descriptors, log duration and attack, `_VECTOR_DESCRIPTORS`, then
    `envelope_shape` of `mono` and `segment_timbre` of `spectrum`.
    """
    mel = mel_filters(sample_rate=spectrum.sample_rate, n_fft=spectrum.n_fft,
                      bands=_MEL_BANDS) @ spectrum.power
    active = spectrum.frame_energy >= 1e-4 * spectrum.frame_energy.max()  # within 40 dB
    mel_db = 10.0 * np.log10(mel[:, active] + _TINY)
    mean = mel_db.mean(axis=1)
    logs = [np.log10(descriptors[name] + 1.0) for name in
            ("centroid_hz", "bandwidth_hz", "rolloff_hz", "duration_s", "attack_s")]
    return np.concatenate([mean - mean.mean(), mel_db.std(axis=1), logs,
                           [descriptors[name] for name in _VECTOR_DESCRIPTORS],
                           envelope_shape(mono=mono, sample_rate=spectrum.sample_rate),
                           segment_timbre(spectrum=spectrum)]).astype(np.float32)


def envelope_shape(*, mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """Eight numbers on how the 1 ms peak envelope rises and falls.

    log10 seconds (+1 ms) from the peak until the envelope first drops `_DECAY_DB` below it
    (the remaining length if it never does) and from the first sample within 40 dB of the
    peak to the peak; the shares of energy in the first `_EARLY_S` after that start; the
    shares of time within 20 and 40 dB of the peak. Hats die in 50 ms, toms ring for 300,
    bass notes hold, pads swell.
    """
    envelope, block = _millisecond_envelope(mono, sample_rate)
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


def segment_timbre(*, spectrum: Spectrum) -> np.ndarray:
    """Spectral shape and level of the attack, body, decay and tail of a stem (52 numbers).

    The stretches start at `_SEGMENT_EDGES_S` after the first frame within 30 dB of the
    loudest; each gives cepstral coefficients 1-12 of its mean 24-band log-mel spectrum
    (shape only: coefficient 0, the gain, is dropped) and its mean level against the
    loudest frame in dB. A stretch the stem does not reach reads as silence: zero shape,
    `_FLOOR_DB`. One-shots differ most in how the spectrum moves in the first second.
    """
    energy = spectrum.frame_energy
    start = int(np.argmax(energy >= 1e-3 * energy.max()))
    mel = mel_filters(sample_rate=spectrum.sample_rate, n_fft=spectrum.n_fft,
                      bands=_SEGMENT_BANDS) @ spectrum.power[:, start:]
    loudest = mel.sum(axis=0).max() + _TINY
    bounds = [round(edge * spectrum.frame_rate) for edge in _SEGMENT_EDGES_S] + [mel.shape[1]]
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


@dataclass(frozen=True)
class Prepared:
    """A stem made ready for analysis: folded, resampled, transformed, described."""

    stereo: np.ndarray  # (1 or 2, n) at ANALYSIS_RATE
    mono: np.ndarray  # (n,) at ANALYSIS_RATE
    spectrum: Spectrum
    pitch: np.ndarray  # (12,) chroma summed over frames, index 0 = C
    descriptors: dict[str, float]
    vector: np.ndarray


def prepare(*, audio: np.ndarray, sample_rate: int) -> Prepared:
    """Fold ``(channels, n)`` `audio` to stereo, resample, take the shared spectrum once,
    and compute the descriptors and the classifier's vector from it."""
    stereo = to_analysis_rate(y=fold_to_stereo(np.asarray(audio, dtype=np.float32)),
                              sample_rate=sample_rate)
    mono = stereo.mean(axis=0)
    spectrum = compute_spectrum(y=mono)
    pitch = chroma(spectrum=spectrum).sum(axis=1)
    descriptors = describe(spectrum=spectrum, stereo=stereo, pitch=pitch)
    return Prepared(stereo=stereo, mono=mono, spectrum=spectrum, pitch=pitch,
                    descriptors=descriptors,
                    vector=feature_vector(spectrum=spectrum, descriptors=descriptors,
                                          mono=mono))
