"""Spectral building blocks in plain numpy: a centred power STFT, mel and chroma filterbanks,
and a peak-picking chroma.

They reproduce ``librosa.stft`` (Hann, centred, zero padding), ``librosa.filters.mel``
(Slaney scale and norm) and ``librosa.filters.chroma`` (tuning 0, no octave weighting) to
float32 precision; ``tests/test_spectral.py`` compares them with librosa. They exist so the
service never imports librosa's spectral modules, which import numba: numba's first import
allocates write+execute memory, which the systemd unit's ``MemoryDenyWriteExecute=yes``
forbids (the unit could not keep W^X otherwise).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_BLOCK = 512  # frames per FFT block: bounds memory on long files
# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_MEL_HZ_STEP = 200.0 / 3.0
_LOG_START_HZ = 1000.0
_LOG_START_MEL = _LOG_START_HZ / _MEL_HZ_STEP
_LOG_STEP = np.log(6.4) / 27.0
_TINY = 1e-12  # keeps logs finite on digital silence


def power_stft(y: np.ndarray, *, n_fft: int, hop: int) -> np.ndarray:
    """Power spectrogram ``(1 + n_fft // 2, frames)`` float32 of mono `y`.

    Frames are centred: `y` is padded with ``n_fft // 2`` zeros on both sides, so there are
    ``1 + len(y) // hop`` frames, as ``np.abs(librosa.stft(y, ...)) ** 2`` gives.
    """
    padded = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2)
    if padded.size < n_fft:
        padded = np.pad(padded, (0, n_fft - padded.size))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = _periodic_hann(n_fft)
    blocks = [np.abs(np.fft.rfft(frames[start:start + _BLOCK] * window, axis=1)) ** 2
              for start in range(0, len(frames), _BLOCK)]
    return np.concatenate(blocks).T.astype(np.float32)


@lru_cache(maxsize=4)
def mel_filterbank(*, sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters ``(n_mels, 1 + n_fft // 2)`` float32 from 0 Hz to Nyquist, each
    scaled by 2 / its bandwidth in Hz (Slaney's constant energy per band)."""
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, bins)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return _shared(weights)


@lru_cache(maxsize=4)
def chroma_filterbank(*, sample_rate: int, n_fft: int) -> np.ndarray:
    """Pitch-class filters ``(12, 1 + n_fft // 2)`` float32, rows C, C#, ... B (A = 440 Hz).

    Each FFT bin spreads over the pitch classes with a Gaussian as wide as the bin (at
    least a semitone); every bin's weights have unit L2 norm.
    """
    freqs = np.linspace(0, sample_rate, n_fft, endpoint=False)[1:]
    semitones = 12 * np.log2(freqs / (440.0 / 16))  # above the A four octaves below A440
    # the 0 Hz bin gets a made-up pitch 1.5 octaves below bin 1, as in Ellis' chroma
    semitones = np.concatenate(([semitones[0] - 18.0], semitones))
    widths = np.concatenate((np.maximum(np.diff(semitones), 1.0), [1.0]))
    distance = np.subtract.outer(semitones, np.arange(12.0)).T
    distance = np.remainder(distance + 6.0 + 120.0, 12.0) - 6.0  # into -6 .. 6 semitones
    weights = np.exp(-0.5 * (2.0 * distance / widths) ** 2)
    weights /= np.sqrt((weights ** 2).sum(axis=0))
    weights = np.roll(weights, -3, axis=0)  # rows started at A; start them at C
    return _shared(weights[:, : 1 + n_fft // 2])


def peak_chroma(power: np.ndarray, *, sample_rate: int, n_fft: int, low_hz: float = 40.0,
                high_hz: float = 5000.0) -> np.ndarray:
    """Pitch-class profile ``(12, frames)`` float32, index 0 = C, of a power spectrogram
    ``(1 + n_fft // 2, frames)``, from interpolated spectral peaks between `low_hz` and
    `high_hz`.

    Like HPCP: each local maximum within 50 dB of its frame's peak has its frequency refined
    by parabolic interpolation of the log power (accurate to a few cents even in 10.8 Hz
    bins, so a bass note lands on its pitch class) and its magnitude added to the nearest
    pitch class, weighted by cos^2 of its detuning; A4 = 440 Hz.
    """
    power = np.asarray(power)
    log_power = np.log(power + _TINY)
    bins = np.arange(power.shape[0])[:, None]
    hz_of_bin = bins * sample_rate / n_fft
    band = (hz_of_bin > low_hz) & (hz_of_bin < high_hz)
    loud = power > power.max(axis=0, keepdims=True) * 1e-5  # within 50 dB of the frame peak
    peaks = np.zeros_like(power, dtype=bool)
    peaks[1:-1] = (power[1:-1] > power[:-2]) & (power[1:-1] >= power[2:])
    k, t = np.nonzero(peaks & band & loud)
    left, mid, right = log_power[k - 1, t], log_power[k, t], log_power[k + 1, t]
    curvature = left - 2 * mid + right
    offset = np.where(curvature < 0, 0.5 * (left - right) / np.minimum(curvature, -_TINY), 0.0)
    hz = (k + np.clip(offset, -0.5, 0.5)) * sample_rate / n_fft
    semitone = 12.0 * np.log2(hz / 440.0) + 9.0  # semitones above C (A = 9)
    nearest = np.round(semitone)
    weight = np.sqrt(power[k, t]) * np.cos(np.pi * (semitone - nearest)) ** 2
    profile = np.zeros((12, power.shape[1]), dtype=np.float64)
    np.add.at(profile, (nearest.astype(int) % 12, t), weight)
    return profile.astype(np.float32)


def _shared(weights: np.ndarray) -> np.ndarray:
    """A contiguous float32 copy, read-only: the cached array is shared by every caller."""
    result = np.ascontiguousarray(weights, dtype=np.float32)
    result.flags.writeable = False
    return result


@lru_cache(maxsize=8)
def _periodic_hann(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _MEL_HZ_STEP
    logarithmic = _LOG_START_MEL + np.log(np.maximum(hz, _LOG_START_HZ) / _LOG_START_HZ) / _LOG_STEP
    return np.where(hz >= _LOG_START_HZ, logarithmic, linear)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    linear = mels * _MEL_HZ_STEP
    logarithmic = _LOG_START_HZ * np.exp(_LOG_STEP * (mels - _LOG_START_MEL))
    return np.where(mels >= _LOG_START_MEL, logarithmic, linear)
