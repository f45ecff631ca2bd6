"""Signal building blocks shared by the drum, tonal and FX generators.

Generators work in float64 and hand their result to `finish_oneshot` or `finish_loop`,
which return the only float32 arrays that leave this package: stereo ``(2, n)``, no DC,
peak-normalised. Loops are processed *circularly* (see `process_circular`) so their end
flows into their start without a click and effect tails wrap around.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pedalboard
from scipy import signal

from daemon.compose.plan import BEATS_PER_BAR

#: ln(1000): an envelope exp(-LN_1000 * t / T) has fallen by 60 dB after T seconds.
LN_1000 = math.log(1000.0)
#: DC blocker corner; below hearing, above the slowest LFO any generator uses.
DC_CUTOFF_HZ = 20.0
#: One-shot end fade; long enough to avoid a click, short enough to keep a tight decay.
FADE_OUT_SECONDS = 0.005
#: One-shot start fade: 0.3 ms keeps transients but removes a step from a non-zero first sample.
FADE_IN_SECONDS = 0.0003
#: Coefficient update period of `sweep_lowpass` (1.5 ms at 44.1 kHz: no audible zipper).
SWEEP_BLOCK = 64


def rng_for(seed: int, label: str) -> np.random.Generator:
    """Return a generator seeded by (`seed`, `label`).

    Each sound draws from its own stream, so changing one sound never shifts the random
    numbers (and hence the timbre) of another sound of the same kit.
    """
    return np.random.default_rng([seed % 2**32, zlib.crc32(label.encode())])


def loop_frames(*, sample_rate: int, bpm: float, bars: int) -> int:
    """Frames in `bars` bars of 4/4 at `bpm`, rounded to the nearest sample."""
    return round(bars * BEATS_PER_BAR * 60.0 / bpm * sample_rate)


def midi_to_hz(midi: np.ndarray | float) -> np.ndarray | float:
    """Equal-tempered frequency of a (fractional) MIDI note; A4 = 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=float) - 69.0) / 12.0)


def db_to_gain(db: float) -> float:
    return 10.0 ** (db / 20.0)


def cycles(freq: np.ndarray, *, sample_rate: int, phase0: float = 0.0) -> np.ndarray:
    """Running phase in cycles for a per-sample frequency array; sample 0 sits at `phase0`."""
    steps = np.concatenate(([0.0], np.cumsum(freq[:-1]))) / sample_rate
    return phase0 + steps


def sine_wave(freq: np.ndarray, *, sample_rate: int, phase0: float = 0.0) -> np.ndarray:
    return np.sin(2.0 * np.pi * cycles(freq, sample_rate=sample_rate, phase0=phase0))


def saw_wave(freq: np.ndarray, *, sample_rate: int, phase0: float = 0.0) -> np.ndarray:
    """Band-limited sawtooth (PolyBLEP): a naive saw with its reset step smoothed.

    The two-sample polynomial correction removes most aliasing of the naive ramp, which
    would otherwise sound as inharmonic whistling on high notes.
    """
    phase = np.mod(cycles(freq, sample_rate=sample_rate, phase0=phase0), 1.0)
    step = np.abs(freq) / sample_rate
    saw = 2.0 * phase - 1.0
    after = phase < step
    x = phase[after] / step[after]
    saw[after] -= 2.0 * x - x * x - 1.0
    before = phase > 1.0 - step
    x = (phase[before] - 1.0) / step[before]
    saw[before] -= x * x + 2.0 * x + 1.0
    return saw


def decay_envelope(frames: int, *, sample_rate: int, seconds: float) -> np.ndarray:
    """Exponential decay from 1 that reaches -60 dB after `seconds`."""
    return np.exp(-LN_1000 * np.arange(frames) / (seconds * sample_rate))


def saturate(x: np.ndarray, *, drive: float) -> np.ndarray:
    """Soft-clip with tanh; `drive` 0..1 maps to 1..10x input gain, output peak kept at 1."""
    gain = 1.0 + 9.0 * drive
    return np.tanh(x * gain) / np.tanh(gain)


def butter(
    x: np.ndarray, *, sample_rate: int, cutoff: float | Sequence[float], kind: str, order: int = 2
) -> np.ndarray:
    """Causal Butterworth filter along the last axis; `kind` is a scipy btype."""
    sos = signal.butter(order, cutoff, btype=kind, fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x, axis=-1)


def sweep_lowpass(
    x: np.ndarray, cutoff: np.ndarray, *, sample_rate: int, resonance: float,
    block: int = SWEEP_BLOCK,
) -> np.ndarray:
    """24 dB/oct resonant low-pass of mono `x` whose cutoff follows the array `cutoff` (Hz).

    Two biquads (Q 0.54, and 0.7..12 set by `resonance` 0..1) are recomputed every
    `block` samples with their state carried over. pedalboard's LadderFilter smooths
    cutoff changes over ~50 ms, too slow for acid-style filter envelopes.
    """
    fc = np.clip(cutoff[::block], 20.0, 0.45 * sample_rate)
    q_peak = 0.7 + 11.3 * resonance**2
    sos = np.stack([_lowpass_biquads(fc, 0.54, sample_rate),
                    _lowpass_biquads(fc, q_peak, sample_rate)], axis=1)
    out = np.empty_like(x)
    state = np.zeros((2, 2))
    for index, start in enumerate(range(0, x.shape[-1], block)):
        chunk = x[start:start + block]
        out[start:start + block], state = signal.sosfilt(sos[index], chunk, zi=state)
    return out


def _lowpass_biquads(fc: np.ndarray, q: float, sample_rate: int) -> np.ndarray:
    """RBJ-cookbook low-pass sections, one row [b0 b1 b2 1 a1 a2] per cutoff."""
    w = 2.0 * np.pi * fc / sample_rate
    alpha, cos_w = np.sin(w) / (2.0 * q), np.cos(w)
    a0 = 1.0 + alpha
    b0 = (1.0 - cos_w) / 2.0 / a0
    return np.stack([b0, 2.0 * b0, b0, np.ones_like(w), -2.0 * cos_w / a0,
                     (1.0 - alpha) / a0], axis=-1)


def stereo(x: np.ndarray) -> np.ndarray:
    """(n,) → dual-mono (2, n); (2, n) passes through."""
    return np.stack([x, x]) if x.ndim == 1 else x


def apply_effects(x: np.ndarray, effects: list, *, sample_rate: int) -> np.ndarray:
    """Run stereo `x` through a pedalboard chain once (one-shots: pad `x` for tails)."""
    board = pedalboard.Pedalboard(effects)
    return board(np.ascontiguousarray(x, dtype=np.float32), sample_rate).astype(np.float64)


def process_circular(
    process: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, tail_frames: int = 0
) -> np.ndarray:
    """Apply `process` to `x` as if `x` repeated forever; return one period.

    `x` is tiled enough times to cover `tail_frames` of filter or reverb memory, processed
    in one go, and the last period is kept: its start carries the tail of the previous
    repetition, which is exactly what the loop's start sounds like when looped.
    """
    frames = x.shape[-1]
    copies = 2 + tail_frames // frames
    return process(np.concatenate([x] * copies, axis=-1))[..., -frames:]


def fold_to_length(x: np.ndarray, frames: int) -> np.ndarray:
    """Exactly `frames` long: tails past the end wrap onto the start, a short `x` is padded."""
    out = np.zeros((*x.shape[:-1], frames))
    for start in range(0, x.shape[-1], frames):
        chunk = x[..., start:start + frames]
        out[..., :chunk.shape[-1]] += chunk
    return out


def periodic_hz(hz: float, *, seconds: float) -> float:
    """Nearest frequency with a whole number (>= 1) of cycles in `seconds`.

    Held oscillators and LFOs snapped this way return to their start phase at the loop
    point, so a loop built from them has no seam.
    """
    return max(1, round(hz * seconds)) / seconds


def finish_oneshot(x: np.ndarray, *, sample_rate: int, peak_db: float) -> np.ndarray:
    """DC-free, faded, peak-normalised float32 stereo one-shot."""
    y = butter(stereo(x), sample_rate=sample_rate, cutoff=DC_CUTOFF_HZ, kind="highpass")
    y -= y.mean(axis=-1, keepdims=True)
    fade_in = max(1, round(FADE_IN_SECONDS * sample_rate))
    fade_out = max(1, round(FADE_OUT_SECONDS * sample_rate))
    y[:, :fade_in] *= np.linspace(0.0, 1.0, fade_in)
    # Raised-cosine fade reaching exactly zero on the last sample.
    y[:, -fade_out:] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade_out))
    return normalise_peak(y, peak_db=peak_db)


def finish_loop(x: np.ndarray, *, sample_rate: int, peak_db: float) -> np.ndarray:
    """DC-free (filtered circularly, so still seamless), peak-normalised float32 stereo loop."""
    y = process_circular(
        lambda tiled: butter(tiled, sample_rate=sample_rate, cutoff=DC_CUTOFF_HZ, kind="highpass"),
        stereo(x),
    )
    y -= y.mean(axis=-1, keepdims=True)
    return normalise_peak(y, peak_db=peak_db)


def normalise_peak(x: np.ndarray, *, peak_db: float) -> np.ndarray:
    """Scale so the absolute peak is `peak_db` dBFS; returns float32."""
    return (x * (db_to_gain(peak_db) / np.max(np.abs(x)))).astype(np.float32)
