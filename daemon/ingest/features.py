"""The shared spectrum and the named descriptors computed from it (pure functions).

Every stem is folded to mono, resampled to `ANALYSIS_RATE` and transformed once by
`compute_spectrum`; chroma, spectral shape, onsets and the classifier's vector all read that
one `Spectrum`. Only the tempo estimator (which needs a finer hop) takes its own transform.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soxr

from daemon.embed.spectral import mel_filterbank, peak_chroma
from daemon.ingest.timbre import millisecond_envelope, timbre_vector

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
    """Pitch-class profile ``(12, frames)``, index 0 = C, from interpolated spectral peaks
    (`daemon.embed.spectral.peak_chroma`, shared with the renderer's ear)."""
    return peak_chroma(spectrum.power, sample_rate=spectrum.sample_rate,
                       n_fft=spectrum.n_fft, low_hz=low_hz, high_hz=high_hz)


def key_chroma(*, y: np.ndarray) -> np.ndarray:
    """Summed chroma ``(12,)`` of mono `y` at `ANALYSIS_RATE`, for key estimation only.

    A separate 186 ms transform: bass notes of sixteenth length amplitude-modulate the
    93 ms frames of the shared spectrum, and the modulation sidebands pull a 49 Hz
    fundamental a semitone flat; 2.7x finer bins resolve them (synthesised tonal loops:
    MIREX score 0.83 -> 0.90). Only tonal stems without a key in their name pay for it.
    """
    spectrum = compute_spectrum(y=y, n_fft=4096, hop=1024)
    return chroma(spectrum=spectrum).sum(axis=1)


def mel_filters(*, sample_rate: int, n_fft: int, bands: int) -> np.ndarray:
    """Triangular mel filterbank ``(bands, bins)`` (Slaney scale, as librosa defaults);
    cached and read-only."""
    return mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=bands)


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
    envelope, block = millisecond_envelope(mono, sample_rate)
    peak = envelope.max()
    start = int(np.argmax(envelope >= 0.01 * peak))  # -40 dB
    rise = int(np.argmax(envelope >= 0.5 * peak))
    return (rise - start) * block / sample_rate


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
#: Bump when the vector's definition changes: cached classifiers are then refused and the
#: shipped corpus must be rebuilt (``make corpus``; a test fails until it is).
#: 2: added `envelope_shape` and `segment_timbre` (lmms cross-validated accuracy +6 points).
#: 3: added `timbre.band_profile`, `low_pitch_motion`, `attack_bursts`, `harmony_motion` and
#: `texture` (issue 12's confusions).
FEATURE_VERSION = 3


def feature_vector(*, spectrum: Spectrum, descriptors: dict[str, float], mono: np.ndarray,
                   chroma_frames: np.ndarray) -> np.ndarray:
    """Fixed-length float32 vector ``(136,)`` for the category classifier.

    Mean of 32 log-mel bands (relative to their own average, so gain cancels),
    log-frequency shape descriptors, log duration and attack, `_VECTOR_DESCRIPTORS`, then
    `timbre.timbre_vector` of `spectrum`, `mono` and the ``(12, frames)`` `chroma_frames`.
    Independent of the stem's gain.
    """
    mel = mel_filters(sample_rate=spectrum.sample_rate, n_fft=spectrum.n_fft,
                      bands=_MEL_BANDS) @ spectrum.power
    active = spectrum.frame_energy >= 1e-4 * spectrum.frame_energy.max()  # within 40 dB
    mel_db = 10.0 * np.log10(mel[:, active] + _TINY)
    mean = mel_db.mean(axis=1)
    logs = [np.log10(descriptors[name] + 1.0) for name in
            ("centroid_hz", "bandwidth_hz", "rolloff_hz", "duration_s", "attack_s")]
    return np.concatenate([mean - mean.mean(), logs,
                           [descriptors[name] for name in _VECTOR_DESCRIPTORS],
                           timbre_vector(spectrum=spectrum, mono=mono,
                                         chroma_frames=chroma_frames)]).astype(np.float32)


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
    frames = chroma(spectrum=spectrum)
    pitch = frames.sum(axis=1)
    descriptors = describe(spectrum=spectrum, stereo=stereo, pitch=pitch)
    return Prepared(stereo=stereo, mono=mono, spectrum=spectrum, pitch=pitch,
                    descriptors=descriptors,
                    vector=feature_vector(spectrum=spectrum, descriptors=descriptors,
                                          mono=mono, chroma_frames=frames))
