"""The default offline stem vector, ``features-v1``: audio descriptors, standardised, unit norm.

The vector has four groups of descriptors, all computed on one 22.05 kHz mono power
spectrogram:

- **timbre** (40): mean and standard deviation of 20 MFCCs of the 64-band log-mel spectrum.
- **spectrum** (16): mean and std of log spectral centroid, bandwidth, 85 % roll-off and
  flatness; the energy share of 8 octave bands (0-80 Hz ... 5-11 kHz) in dB.
- **rhythm and envelope** (10): onset rate, mean spectral flux, periodicity of the flux in
  six lag bands from 0.1 s to 2 s, the share of sustained frames and the envelope crest.
- **pitch** (8): magnitudes of DFT coefficients 1-6 of the mean chroma profile (its interval
  content), chroma entropy and mean per-frame chroma peakiness. These are *transposition-
  invariant* by construction: the same riff in another key gets nearly the same pitch
  descriptors (not exactly: the 11 Hz STFT resolution blurs the chroma of low notes). Key is
  analysed and matched separately, so the vector answers "sounds like", not "same key".

The input is normalised to unit RMS first, so gain does not change the vector. Frames more
than 60 dB below the loudest frame count as silence and are left out of the frame statistics,
so a one-shot's tail padding does not dilute its timbre.

Standardisation: each raw descriptor is centred and scaled by fixed constants (`_CENTER`,
`_SCALE`), the median and standard deviation of that descriptor over a synthetic corpus of
240 procedurally generated stems (kicks, snares, hats, basses, pads, plucks, noise
atmospheres, risers and drum loops at 22.05/44.1/48 kHz; the generator lives in
``tests/test_embed_features.py`` and a test checks the constants still match it). Values are
clipped to +-4 sigma, then each group is divided by the square root of its size so every group
carries the same expected weight in the cosine, whatever its number of dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import soxr
from scipy.fft import dct
from scipy.signal import find_peaks

from daemon.embed.spectral import chroma_filterbank, mel_filterbank, power_stft
from daemon.errors import AnalysisError

FEATURES_MODEL = "features-v1"
ANALYSIS_RATE = 22050
_N_FFT = 2048  # 93 ms: resolves ~11 Hz, enough to separate bass partials
_HOP = 512  # 23 ms frames
_N_MELS = 64
_N_MFCC = 20
_FLOOR_DB = -80.0  # dynamic range kept in log spectra; below is treated as silence
_ACTIVE_DB = -60.0  # frames this far below the loudest frame are left out of statistics
_SUSTAIN_DB = -10.0  # a frame within 10 dB of the loudest counts as sustained
_ONSET_FLUX_DB = 2.0  # mean rise over mel bands (dB per frame) that marks an onset
_ONSET_GAP = 3  # frames (70 ms) between two counted onsets
_SILENCE_RMS = 1e-9  # below this (-180 dBFS) the input is digital silence: no gain is applied
_EPS = 1e-12
_BAND_EDGES_HZ = (0.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 5120.0, ANALYSIS_RATE / 2)
_LAG_EDGES_S = np.geomspace(0.1, 2.0, 7)  # six log-spaced period bands: 600 bpm down to 30 bpm
_CLIP_SIGMA = 4.0

GROUP_SIZES = {"timbre": 2 * _N_MFCC, "spectrum": 8 + len(_BAND_EDGES_HZ) - 1,
               "rhythm": 4 + len(_LAG_EDGES_S) - 1, "pitch": 8}
FEATURES_DIM = sum(GROUP_SIZES.values())

# Corpus median and standard deviation of every raw descriptor (see module docstring).
_CENTER = np.array([
    # timbre
    -340.0, 20.0, 2.1, 6.1, 1.3, 1.9, 0.63, 1.1, 0.36, 0.84, -0.049, 0.32, -0.37, 0.18, -0.11,
    0.43, -0.11, 0.62, -0.01, 0.58, 54.0, 11.0, 8.5, 6.3, 5.1, 4.7, 4.1, 3.5, 3.3, 3.3, 3.1,
    3.0, 3.1, 3.3, 3.2, 3.2, 3.1, 3.1, 3.1, 3.5,
    # spectrum
    10.0, 9.9, 9.7, -2.3, 0.2, 0.11, 0.27, 0.12, -25.0, -19.0, -9.9, -15.0, -19.0, -20.0, -17.0,
    -15.0,
    # rhythm
    0.0, 0.58, 0.0, 0.14, 0.1, 0.065, 0.012, 0.0063, 0.62, 8.7,
    # pitch
    0.17, 0.094, 0.051, 0.024, 0.014, 0.0071, 0.95, 0.2,
])
_SCALE = np.array([
    # timbre
    140.0, 67.0, 15.0, 12.0, 11.0, 9.7, 9.8, 8.8, 9.3, 8.3, 7.9, 7.0, 7.1, 6.6, 6.8, 6.4, 6.2,
    5.8, 6.0, 6.0, 36.0, 22.0, 5.1, 3.9, 3.3, 3.1, 3.2, 3.4, 3.5, 4.0, 4.1, 4.1, 4.2, 4.0, 3.7,
    3.5, 3.2, 3.3, 3.8, 4.5,
    # spectrum
    2.3, 2.3, 2.5, 3.1, 0.8, 0.93, 0.9, 1.4, 18.0, 17.0, 15.0, 14.0, 15.0, 15.0, 15.0, 20.0,
    # rhythm
    1.2, 0.47, 0.25, 0.28, 0.3, 0.35, 0.32, 0.27, 0.26, 13.0,
    # pitch
    0.15, 0.11, 0.16, 0.093, 0.078, 0.031, 0.061, 0.15,
])


def embed_features(*, y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Embed one stem as a ``features-v1`` vector.

    Parameters
    ----------
    y : np.ndarray
        Samples, shape ``(n,)`` or ``(channels, n)`` (the shorter axis is taken as channels).
    sample_rate : int
        Sample rate of `y` in Hz; resampled to 22.05 kHz internally.

    Returns
    -------
    np.ndarray
        float32 vector of length `FEATURES_DIM` with unit L2 norm; deterministic.

    Raises
    ------
    AnalysisError
        Empty input, non-finite samples, a bad shape or sample rate.
    """
    return standardise(describe_audio(y=y, sample_rate=sample_rate))


def describe_audio(*, y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Raw (unscaled) descriptors of one stem, in vector order; see the module docstring."""
    mono = prepare_mono(y=y, sample_rate=sample_rate)
    power = power_stft(mono, n_fft=_N_FFT, hop=_HOP)
    frame_db = _relative_db(power.sum(axis=0))
    active = frame_db >= _ACTIVE_DB
    mel_db = _relative_db(
        mel_filterbank(sample_rate=ANALYSIS_RATE, n_fft=_N_FFT, n_mels=_N_MELS) @ power)
    return np.concatenate([
        timbre_descriptors(mel_db=mel_db[:, active]),
        spectrum_descriptors(power=power[:, active]),
        rhythm_descriptors(mel_db=mel_db, frame_db=frame_db, duration=mono.size / ANALYSIS_RATE),
        pitch_descriptors(power=power[:, active]),
    ])


def standardise(raw: np.ndarray) -> np.ndarray:
    """Centre, scale, clip and group-weight raw descriptors; return a float32 unit vector."""
    z = np.clip((raw - _CENTER) / _SCALE, -_CLIP_SIGMA, _CLIP_SIGMA)
    weights = np.concatenate([np.full(size, size ** -0.5) for size in GROUP_SIZES.values()])
    vector = z * weights
    norm = np.linalg.norm(vector)
    if norm < _EPS:
        # Only a stem whose every descriptor sits exactly on the corpus median lands here.
        vector, norm = np.eye(FEATURES_DIM)[0], 1.0
    return (vector / norm).astype(np.float32)


def prepare_mono(*, y: np.ndarray, sample_rate: int) -> np.ndarray:
    """Validate, downmix, resample to 22.05 kHz, normalise to unit RMS, pad to one FFT frame."""
    samples = np.asarray(y, dtype=np.float64)
    if samples.ndim == 2:
        samples = samples.mean(axis=int(np.argmin(samples.shape)))
    if samples.ndim != 1 or samples.size == 0:
        raise AnalysisError(f"cannot embed audio of shape {np.shape(y)}: need (n,) or (ch, n)")
    if not np.all(np.isfinite(samples)):
        raise AnalysisError("cannot embed audio with NaN or infinite samples")
    if sample_rate <= 0:
        raise AnalysisError(f"cannot embed audio at sample rate {sample_rate}")
    if sample_rate != ANALYSIS_RATE:
        samples = soxr.resample(samples, sample_rate, ANALYSIS_RATE, quality="HQ")
    rms = float(np.sqrt(np.mean(samples ** 2)))
    if rms > _SILENCE_RMS:
        samples = samples / rms
    if samples.size < _N_FFT:
        samples = np.pad(samples, (0, _N_FFT - samples.size))
    return samples


def timbre_descriptors(*, mel_db: np.ndarray) -> np.ndarray:
    """Mean and std over frames of the first 20 MFCCs of a relative-dB mel spectrogram."""
    mfcc = dct(mel_db, type=2, norm="ortho", axis=0)[:_N_MFCC]
    return np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)])


def spectrum_descriptors(*, power: np.ndarray) -> np.ndarray:
    """Mean/std of log2 centroid, bandwidth, roll-off (Hz) and log10 flatness; band shares."""
    freqs = np.fft.rfftfreq(_N_FFT, 1.0 / ANALYSIS_RATE)
    total = power.sum(axis=0) + _EPS
    centroid = freqs @ power / total
    bandwidth = np.sqrt(((freqs[:, None] - centroid) ** 2 * power).sum(axis=0) / total)
    rolloff = freqs[np.argmax(np.cumsum(power, axis=0) >= 0.85 * total, axis=0)]
    log_power = np.log(power + _EPS)
    flatness = np.exp(log_power.mean(axis=0)) / (power.mean(axis=0) + _EPS)
    # 20 Hz floor: below it a "frequency" means silence or DC, not timbre
    per_frame = np.stack([np.log2(np.maximum(centroid, 20.0)), np.log2(np.maximum(bandwidth, 20.0)),
                          np.log2(np.maximum(rolloff, 20.0)), np.log10(flatness + _EPS)])
    band = np.digitize(freqs, _BAND_EDGES_HZ[1:-1])
    shares = np.bincount(band, weights=power.sum(axis=1), minlength=len(_BAND_EDGES_HZ) - 1)
    band_db = 10 * np.log10(shares / (shares.sum() + _EPS) + 1e-8)
    return np.concatenate([per_frame.mean(axis=1), per_frame.std(axis=1), band_db])


def rhythm_descriptors(*, mel_db: np.ndarray, frame_db: np.ndarray,
                       duration: float) -> np.ndarray:
    """Onset rate, mean flux, flux periodicity in six lag bands, sustain share, crest (dB)."""
    flux = np.maximum(np.diff(mel_db, axis=1), 0.0).mean(axis=0)
    onsets, _ = find_peaks(flux, height=_ONSET_FLUX_DB, distance=_ONSET_GAP)
    return np.concatenate([
        [np.log2(1.0 + onsets.size / duration), np.log1p(flux.mean())],
        flux_periodicity(flux=flux),
        [np.mean(frame_db >= _SUSTAIN_DB), -frame_db.mean()],
    ])


def flux_periodicity(*, flux: np.ndarray) -> np.ndarray:
    """Peak normalised autocorrelation of the flux within each lag band (0 where too short)."""
    centred = flux - flux.mean()
    spectrum = np.fft.rfft(centred, n=2 * centred.size)
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[: centred.size]
    bands = np.zeros(len(_LAG_EDGES_S) - 1)
    if acf[0] <= _EPS:  # a constant flux has no periodicity
        return bands
    acf = acf / acf[0]
    lags = np.round(_LAG_EDGES_S * ANALYSIS_RATE / _HOP).astype(int)
    for index, (low, high) in enumerate(zip(lags[:-1], lags[1:])):
        if low < acf.size:
            bands[index] = max(0.0, float(acf[low:high].max()))
    return bands


def pitch_descriptors(*, power: np.ndarray) -> np.ndarray:
    """|DFT_k| (k=1..6) of the mean chroma profile, its normalised entropy, mean peakiness."""
    # tuning fixed at A440: estimating it costs more than the whole embedding
    chroma = chroma_filterbank(sample_rate=ANALYSIS_RATE, n_fft=_N_FFT) @ power
    frames = chroma / (chroma.sum(axis=0) + _EPS)
    profile = frames.mean(axis=1)
    if profile.sum() <= _EPS:  # silence has no pitch content: call it flat
        profile = np.full(12, 1.0 / 12)
    profile = profile / profile.sum()
    interval_content = np.abs(np.fft.rfft(profile))[1:7]
    entropy = -(profile * np.log(profile + _EPS)).sum() / np.log(12)
    peakiness = float(frames.max(axis=0).mean())
    return np.concatenate([interval_content, [entropy, peakiness]])


def _relative_db(power: np.ndarray) -> np.ndarray:
    """Power in dB relative to its maximum, floored at -80 dB (0 dB throughout for silence)."""
    reference = max(float(np.max(power)), _EPS)
    return np.maximum(10 * np.log10(np.maximum(power, _EPS) / reference), _FLOOR_DB)


class FeaturesBackend:
    """The default embedding backend: `embed_features` per stem, no text embedding."""

    model_name = FEATURES_MODEL
    dim = FEATURES_DIM

    def embed_audio(self, batch: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
        """Embed ``(samples, sample_rate)`` pairs; returns ``(n, FEATURES_DIM)`` float32."""
        vectors = [embed_features(y=y, sample_rate=rate) for y, rate in batch]
        return np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32)

    def embed_text(self, texts: Sequence[str]) -> None:
        """Audio descriptors have no text side; callers fall back to `rank_text`."""
        return None
