"""Mastering: integrated loudness to target under a true-peak ceiling.

Both measures stream over the track in chunks, so a 10-minute mix needs no full-length
copies: `true_peak_db` equals the peak of ``scipy.signal.resample_poly(audio, 4, 1)`` (the
same interpolator, evaluated as polyphase FFT convolutions and only where a peak can be), and
`integrated_loudness` is BS.1770 gated loudness exactly as pyloudnorm computes it (same
K-weighting filters, same blocks).

`master` is a look-ahead limiter whose gain curve is computed from the 4x-oversampled peaks
(pedalboard's Limiter looks at sample peaks only, which inter-sample peaks overshoot). The
curve lives on a coarse grid of `coarse` samples; the gain and the curve are found together by
iterating a cheap loudness estimate, applied, then the result is measured exactly and the
whole step repeats until loudness and true peak are both within tolerance.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyloudnorm
from scipy.ndimage import maximum_filter1d, minimum_filter1d
from scipy.signal import firwin, oaconvolve, sosfilt, tf2sos

OVERSAMPLE = 4
INTERPOLATOR_TAPS = 81  # resample_poly's default 4x low-pass (2 * 10 * 4 + 1 Kaiser taps)
EDGE = 16  # input samples of context per chunk side; > the interpolator's 10-sample reach
MERGE_BLOCKS = 2048  # ~0.7 s at 44.1 kHz: fewer, longer calls are faster
CHUNK_BLOCKS = 8192  # coarse blocks per processing chunk (~2.8 s at 44.1 kHz)
WORKERS = min(2, os.cpu_count() or 1)  # measuring threads (the machine has 2 cores)
ABSOLUTE_GATE = -70.0  # LUFS, BS.1770
RELATIVE_GATE = -10.0  # LU below the absolute-gated loudness
CEILING_MARGIN_DB = 0.2  # the limiter aims this far under the ceiling (estimate error)
ATTACK_SECONDS = 0.003  # look-ahead: the gain is fully down when a peak arrives
#: Stay down this long after a peak: one period of a 50 Hz bass, so the gain does not ride a
#: sustained bass's waveform (that would distort it) and can release fast once peaks stop.
HOLD_SECONDS = 0.02
#: Recovery speed after the hold. A slow recovery pumps: the gain, down at every kick, rose
#: through the offbeats (4 dB took 100 ms at 40 dB/s) and handed them the groove's pulse.
RELEASE_DB_PER_SECOND = 160.0
LOUDNESS_TOLERANCE = 0.2  # LU; the contract allows 0.5, the margin absorbs the estimate
MAX_PASSES = 4
MAX_GAIN_DB = 40.0  # never boost more than this (a near-silent mix is not a song)
GAIN_SLACK_DB = 3.0  # the gain may end this much above its first guess (limiting costs level)


@dataclass(frozen=True)
class Measurement:
    """Per coarse block: the 4x-oversampled peak and the summed K-weighted power."""

    sample_rate: int
    samples: int
    coarse: int
    peaks: np.ndarray  # float32, max |x| over channels and oversampled points
    power: np.ndarray  # float64, sum over samples and channels of K-weighted x²

    @property
    def true_peak_db(self) -> float:
        return _db(float(self.peaks.max(initial=0.0)))

    @property
    def lufs(self) -> float:
        return gated_loudness(self.power, coarse=self.coarse, sample_rate=self.sample_rate,
                              samples=self.samples)


@dataclass(frozen=True)
class MasterResult:
    lufs: float
    true_peak_db: float
    gain_db: float  # static gain over all passes (the limiter comes on top)
    notes: tuple[str, ...]


def true_peak_db(audio: np.ndarray, sr: int) -> float:
    """True peak of ``(channels, n)`` audio in dBTP, from 4x oversampling."""
    return measure(audio, sample_rate=sr, loudness=False).true_peak_db


def integrated_loudness(audio: np.ndarray, sr: int) -> float:
    """BS.1770 integrated loudness (LUFS) of ``(channels, n)`` audio; -inf when silent or
    shorter than one 400 ms block."""
    coarse = coarse_block(sr)
    return gated_loudness(_k_power(audio, sample_rate=sr, coarse=coarse), coarse=coarse,
                          sample_rate=sr, samples=audio.shape[1])


def measure(audio: np.ndarray, *, sample_rate: int, loudness: bool = True,
            target_lufs: float | None = None, ceiling_db: float | None = None) -> Measurement:
    """Chunked passes over `audio`: K-weighted power (if `loudness`) and oversampled peaks.

    Oversampling is the costly part, so it runs only where it can matter: blocks whose
    worst-case inter-sample peak (a bound from the sample peaks) stays under a floor keep that
    bound. The floor is the highest sample peak, which the true peak can only exceed, so
    `Measurement.true_peak_db` is always exact. Given a loudness target and a ceiling, the
    floor drops to where the gain towards the target (plus `GAIN_SLACK_DB`) could lift a block
    to the ceiling, so the limiter sees exact peaks wherever it may act.
    """
    coarse = coarse_block(sample_rate)
    power = (_k_power(audio, sample_rate=sample_rate, coarse=coarse) if loudness
             else np.zeros(0))
    sample = _sample_peaks(audio, coarse)
    floor = float(sample.max(initial=0.0))
    if loudness and target_lufs is not None and ceiling_db is not None:
        lufs = gated_loudness(power, coarse=coarse, sample_rate=sample_rate,
                              samples=audio.shape[1])
        if np.isfinite(lufs):
            floor_db = ceiling_db - (target_lufs - lufs) - GAIN_SLACK_DB
            floor = min(floor, 10.0 ** (floor_db / 20.0))
    peaks = _true_peaks(audio, sample, coarse=coarse, floor=floor)
    return Measurement(sample_rate, audio.shape[1], coarse, peaks, power)


def gated_loudness(power: np.ndarray, *, coarse: int, sample_rate: int, samples: int) -> float:
    """Gated loudness from per-block K-weighted power, with pyloudnorm's block layout
    (400 ms blocks every 100 ms, the last block the one that ends nearest the end)."""
    segment = sample_rate // 10 // coarse  # coarse blocks per 100 ms step
    count = int(np.round((samples / sample_rate - 0.4) / 0.1)) + 1
    if count <= 0 or power.size == 0:
        return float("-inf")
    padded = np.zeros((count + 3) * segment)
    padded[:min(power.size, padded.size)] = power[:padded.size]
    steps = padded.reshape(-1, segment).sum(axis=1)
    z = (steps[:count] + steps[1:count + 1] + steps[2:count + 2] + steps[3:count + 3])
    z /= 0.4 * sample_rate
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(z)
    above = z[block_lufs >= ABSOLUTE_GATE]
    if above.size == 0:
        return float("-inf")
    relative = -0.691 + 10.0 * np.log10(above.mean()) + RELATIVE_GATE
    kept = z[(block_lufs > relative) & (block_lufs > ABSOLUTE_GATE)]
    return -0.691 + 10.0 * np.log10(kept.mean()) if kept.size else float("-inf")


def master(audio: np.ndarray, *, sample_rate: int, target_lufs: float,
           ceiling_db: float) -> MasterResult:
    """Bring `audio` (modified in place) to `target_lufs` with true peak ≤ `ceiling_db`."""
    notes: list[str] = []
    current = measure(audio, sample_rate=sample_rate, target_lufs=target_lufs,
                      ceiling_db=ceiling_db)
    if not np.isfinite(current.lufs):
        return MasterResult(current.lufs, current.true_peak_db, 0.0, ("the mix is silent",))
    total_gain = 0.0
    for _ in range(MAX_PASSES):
        if _within(current, target_lufs, ceiling_db):
            break
        gain_db, envelope, estimate = fit_gain(current, target_lufs=target_lufs,
                                               ceiling_db=ceiling_db - CEILING_MARGIN_DB)
        apply_gain(audio, gain_db=gain_db, envelope_db=envelope, coarse=current.coarse)
        total_gain += gain_db
        current = measure(audio, sample_rate=sample_rate, target_lufs=target_lufs,
                          ceiling_db=ceiling_db)
        if abs(estimate - target_lufs) > LOUDNESS_TOLERANCE:
            notes.append(f"target loudness {target_lufs:g} LUFS is unreachable under the "
                         f"{ceiling_db:g} dBTP ceiling; reached {current.lufs:.2f} LUFS")
            break
    if not notes and not _within(current, target_lufs, ceiling_db):
        notes.append(f"mastering stopped after {MAX_PASSES} passes at {current.lufs:.2f} LUFS, "
                     f"{current.true_peak_db:.2f} dBTP")
    return MasterResult(current.lufs, current.true_peak_db, total_gain, tuple(notes))


def _within(measured: Measurement, target_lufs: float, ceiling_db: float) -> bool:
    return (abs(measured.lufs - target_lufs) <= LOUDNESS_TOLERANCE
            and measured.true_peak_db <= ceiling_db)


def fit_gain(measured: Measurement, *, target_lufs: float,
             ceiling_db: float) -> tuple[float, np.ndarray, float]:
    """Static gain and limiter curve (dB per coarse node) that reach `target_lufs`, and the
    estimated loudness; the limiter takes back what the gain pushes over `ceiling_db`."""
    peaks_db = 20.0 * np.log10(np.maximum(measured.peaks, 1e-12))
    gain_db = min(MAX_GAIN_DB, target_lufs - measured.lufs)
    for _ in range(16):  # each step costs a few vector operations on the coarse grid
        envelope = limiter_curve(peaks_db, gain_db=gain_db, ceiling_db=ceiling_db,
                                 block_seconds=measured.coarse / measured.sample_rate)
        middle = (envelope[:-1] + envelope[1:]) / 2.0
        power = measured.power * 10.0 ** ((gain_db + middle) / 10.0)
        estimate = gated_loudness(power, coarse=measured.coarse,
                                  sample_rate=measured.sample_rate, samples=measured.samples)
        error = target_lufs - estimate
        if abs(error) < 0.01 or gain_db + error > MAX_GAIN_DB:
            break
        gain_db += error
    return gain_db, envelope, estimate


def limiter_curve(peaks_db: np.ndarray, *, gain_db: float, ceiling_db: float,
                  block_seconds: float) -> np.ndarray:
    """Gain reduction (dB, ≤ 0) at each coarse node (block edges, ``len(peaks) + 1``).

    Within a block the gain moves linearly between its two nodes, so each node must satisfy
    both neighbouring blocks. Release is a constant dB rate (a cumulative minimum); then a
    look-ahead minimum with hold, smoothed by a moving average as long as the look-ahead:
    every value stays at or below the requirement, so no peak passes the ceiling.
    """
    need = np.minimum(0.0, ceiling_db - (gain_db + peaks_db))
    nodes = np.minimum(np.r_[0.0, need], np.r_[need, 0.0])
    step = RELEASE_DB_PER_SECOND * block_seconds
    ramp = step * np.arange(nodes.size)
    released = ramp + np.minimum.accumulate(nodes - ramp)
    attack = max(1, round(ATTACK_SECONDS / block_seconds))
    hold = round(HOLD_SECONDS / block_seconds)
    size = hold + attack + 1
    lowest = minimum_filter1d(released, size=size, origin=hold - size // 2, mode="nearest")
    total = np.cumsum(np.r_[np.full(attack + 1, lowest[0]), lowest])
    return (total[attack + 1:] - total[:-attack - 1]) / (attack + 1)


def apply_gain(audio: np.ndarray, *, gain_db: float, envelope_db: np.ndarray,
               coarse: int) -> None:
    """Multiply `audio` in place by the static gain and the interpolated limiter curve."""
    nodes = np.arange(envelope_db.size) * coarse
    chunk = CHUNK_BLOCKS * coarse
    for start in range(0, audio.shape[1], chunk):
        stop = min(audio.shape[1], start + chunk)
        curve = np.interp(np.arange(start, stop), nodes, envelope_db)
        audio[:, start:stop] *= (10.0 ** ((gain_db + curve) / 20.0)).astype(np.float32)


def coarse_block(sample_rate: int) -> int:
    """Largest block (≤ 16 samples, ~0.35 ms) that divides the 100 ms loudness step."""
    step = sample_rate // 10
    return next(size for size in range(16, 0, -1) if step % size == 0)


@lru_cache(maxsize=8)
def _k_weighting(sample_rate: int) -> tuple[np.ndarray, float]:
    """pyloudnorm's two K-weighting stages as one second-order-sections filter and gain."""
    stages = [pyloudnorm.IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sample_rate, "high_shelf"),
              pyloudnorm.IIRfilter(0.0, 0.5, 38.0, sample_rate, "high_pass")]
    sos = np.vstack([tf2sos(stage.b, stage.a) for stage in stages])
    return sos, float(np.prod([stage.passband_gain for stage in stages]))


def _k_power(audio: np.ndarray, *, sample_rate: int, coarse: int) -> np.ndarray:
    """Per coarse block: K-weighted power summed over samples and channels (float64).
    Channels are filtered in parallel (the filter loop releases the GIL)."""
    with ThreadPoolExecutor(WORKERS) as pool:
        channels = list(pool.map(lambda signal: _k_power_channel(
            signal, sample_rate=sample_rate, coarse=coarse), audio))
    return np.sum(channels, axis=0) if channels else np.zeros(0)


def _k_power_channel(signal: np.ndarray, *, sample_rate: int, coarse: int) -> np.ndarray:
    sos, gain = _k_weighting(sample_rate)
    state = np.zeros((sos.shape[0], 2))
    chunk = CHUNK_BLOCKS * coarse
    parts = []
    for start in range(0, signal.size, chunk):
        weighted, state = sosfilt(sos, signal[start:start + chunk], zi=state)
        weighted *= gain
        np.square(weighted, out=weighted)
        parts.append(_reduce_blocks(np.add, weighted, coarse))
    return np.concatenate(parts) if parts else np.zeros(0)


def _sample_peaks(audio: np.ndarray, coarse: int) -> np.ndarray:
    """Per coarse block: max |x| over its samples and channels (float32)."""
    chunk = CHUNK_BLOCKS * coarse
    parts = [_reduce_blocks(np.maximum, np.abs(audio[:, start:start + chunk]).max(axis=0),
                            coarse) for start in range(0, audio.shape[1], chunk)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _true_peaks(audio: np.ndarray, sample: np.ndarray, *, coarse: int,
                floor: float) -> np.ndarray:
    """Per coarse block: the 4x-oversampled peak where its bound reaches `floor`, else the
    bound. The interpolator's output is at most ``sum(|taps of a phase|)`` times the largest
    input within its reach, and that reach (10 samples) is within one neighbouring block."""
    reach = -(-_phases()[1].size // 2 // coarse)
    bound = _bound_factor() * maximum_filter1d(sample, size=2 * reach + 1, mode="constant")
    peaks = bound.astype(np.float32)
    # Selected blocks less than MERGE_BLOCKS apart are processed together (fewer calls).
    selected = maximum_filter1d((bound >= floor).astype(np.uint8), size=MERGE_BLOCKS + 1,
                                mode="constant")
    edges = np.flatnonzero(np.diff(np.r_[0, selected, 0]))
    spans = [(block, min(last, block + CHUNK_BLOCKS)) for first, last in
             zip(edges[0::2], edges[1::2]) for block in range(first, last, CHUNK_BLOCKS)]

    def exact(span: tuple[int, int]) -> np.ndarray:
        upsampled = _oversampled_abs(audio, span[0] * coarse,
                                     min(audio.shape[1], span[1] * coarse))
        return _reduce_blocks(np.maximum, upsampled, coarse)

    with ThreadPoolExecutor(WORKERS) as pool:  # the FFTs release the GIL
        for (block, stop), values in zip(spans, pool.map(exact, spans)):
            peaks[block:stop] = values
    return peaks


def _oversampled_abs(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    """|4x-oversampled audio| for input samples start..stop, maximum over channels and the
    four points of each sample.

    Equal to ``resample_poly(audio, 4, 1, axis=1)`` (same filter, same alignment) computed as
    its four polyphase branches: branch 0 is the samples themselves (its only non-zero tap is
    the centre), branches 1-3 are FFT convolutions. Reads `EDGE` neighbours each side so chunk
    seams match a whole-signal resampling.
    """
    low, high = max(0, start - EDGE), min(audio.shape[1], stop + EDGE)
    block = audio[:, low:high]
    first, count = start - low, stop - start
    phases = _phases()
    result = np.abs(block[0, first:first + count])
    np.maximum(result, np.abs(block[1:, first:first + count]).max(axis=0, initial=0.0),
               out=result)
    result *= np.float32(phases[0][phases[0].size // 2])
    for taps in phases[1:]:
        centre = taps.size // 2  # branch output for sample i sits at full-convolution i + 10
        branch = oaconvolve(block, taps[None, :].astype(block.dtype), mode="full", axes=1)
        branch = np.abs(branch[:, first + centre:first + centre + count])
        np.maximum(result, branch.max(axis=0), out=result)
    return result


def _reduce_blocks(ufunc: np.ufunc, values: np.ndarray, size: int) -> np.ndarray:
    """`ufunc` over consecutive blocks of `size` values (the last block may be short)."""
    return ufunc.reduceat(values, np.arange(0, values.size, size))


@lru_cache(maxsize=1)
def _phases() -> tuple[np.ndarray, ...]:
    """The polyphase branches of resample_poly's default 4x low-pass (Kaiser, beta 5, scaled
    by the up factor): branch p holds taps p, p + 4, p + 8 ..."""
    taps = firwin(INTERPOLATOR_TAPS, 1.0 / OVERSAMPLE, window=("kaiser", 5.0)) * OVERSAMPLE
    return tuple(taps[phase::OVERSAMPLE] for phase in range(OVERSAMPLE))


@lru_cache(maxsize=1)
def _bound_factor() -> float:
    """Largest absolute tap sum of any branch of the interpolator."""
    return float(max(np.abs(taps).sum() for taps in _phases()))


def _db(value: float) -> float:
    return 20.0 * np.log10(value) if value > 0 else float("-inf")
