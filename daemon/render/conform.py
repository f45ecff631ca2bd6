"""Bring stems to the plan: decode, resample, fold to stereo, stretch and pitch, cut to bars.

Loops are time-stretched to the plan's tempo and pitch-shifted to its key with Rubber Band
(through pedalboard) and cut to a whole number of bars, sample-exact. One-shots keep their
timing and are only pitch-shifted. Results are cached as ``.npy`` files in the cache folder,
keyed by the stem's content hash and every parameter, so a second render skips the work;
`prune_cache` keeps the folder within ``render.cache_max_mb``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pedalboard
import soundfile
import soxr
from pedalboard.io import AudioFile

from daemon import fsutil
from daemon.categories import CategoryRule, CategoryTable
from daemon.compose.plan import BEATS_PER_BAR
from daemon.errors import RenderError
from daemon.faults import cache_fault_line
from daemon.store.records import StemRecord

log = logging.getLogger(__name__)

CONFORM_VERSION = 1  # bump when the processing changes, so stale cache files are ignored
_CACHE_PREFIX = "conform-"
ONESHOT_MAX_SECONDS = 30.0  # longer one-shots (drones, long risers) are cut here
ONESHOT_FADE_SECONDS = 0.003  # 3 ms: a file that ends abruptly must not click
SEAM_SECONDS = 0.01  # splice crossfade inside a stretched loop (and the splice grid)
LENGTH_TRUST = 0.02  # a loop's length beats its analysed tempo if they agree within 2 %
CALIBRATION_BURSTS = 24  # 6 s of bursts: the measured tempo error is good to ~5e-6


def read_audio(path: Path, *, sample_rate: int) -> np.ndarray:
    """Decode `path` to float32 stereo ``(2, n)`` at `sample_rate`; raise `RenderError`.

    soundfile reads WAV/FLAC/OGG/AIFF; pedalboard's decoder covers MP3 and the rest.
    Mono is duplicated, more than two channels are folded (even ones left, odd ones right).
    """
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        data = data.T
    except (RuntimeError, OSError):
        try:
            with AudioFile(str(path)) as handle:
                data, rate = handle.read(handle.frames), handle.samplerate
        except (RuntimeError, OSError, ValueError) as exc:
            raise RenderError(f"{path}: cannot decode audio: {exc}") from exc
    if data.shape[1] == 0:
        raise RenderError(f"{path}: the file holds no audio")
    data = np.nan_to_num(np.asarray(data, dtype=np.float32))
    stereo = data if data.shape[0] == 2 else np.stack([data[0::2].mean(axis=0),
                                                      data[1::2].mean(axis=0)
                                                      if data.shape[0] > 1 else data[0]])
    if int(rate) != sample_rate:
        stereo = soxr.resample(stereo.T, int(rate), sample_rate, quality="HQ").T
    return np.ascontiguousarray(stereo, dtype=np.float32)


def loop_geometry(stem: StemRecord, source_bpm: float) -> tuple[int, int, float]:
    """(whole beats, whole bars, tempo) of a loop read at `source_bpm`.

    A loop is cut to whole beats, so its length is a better tempo measure than a beat tracker:
    when the length implies a tempo within `LENGTH_TRUST` of `source_bpm`, that tempo is used.
    A loop shorter than a bar is repeated to fill one.
    """
    beats = max(1, round(stem.duration * source_bpm / 60.0))
    bars = max(1, round(beats / BEATS_PER_BAR))
    implied = beats * 60.0 / stem.duration
    return beats, bars, implied if abs(implied / source_bpm - 1.0) <= LENGTH_TRUST else source_bpm


def conform_loop(stem: StemRecord, *, source_bpm: float, plan_bpm: float, semitones: int,
                 sample_rate: int, cache_dir: Path,
                 categories: CategoryTable) -> tuple[np.ndarray, float]:
    """Return the loop stretched to `plan_bpm`, shifted by `semitones` and cut to its whole
    bars (exactly ``round(bars * 240 / plan_bpm * sample_rate)`` samples), and the speed ratio
    applied. `categories` says how the stem's category is stretched (`transient_mode`)."""
    beats, bars, tempo = loop_geometry(stem, source_bpm)
    ratio = plan_bpm / tempo
    mode = transient_mode(categories[stem.category])
    key = ("loop", stem.content_hash, sample_rate, round(plan_bpm, 6), round(tempo, 6),
           semitones, beats, bars, mode, CONFORM_VERSION)

    def compute() -> np.ndarray:
        audio = read_audio(stem.path, sample_rate=sample_rate)
        source = _fit_length(audio, round(beats * 60.0 / tempo * sample_rate))
        period = _tile(source, round(bars * BEATS_PER_BAR * 60.0 / tempo * sample_rate))
        target = round(bars * BEATS_PER_BAR * 60.0 / plan_bpm * sample_rate)
        if abs(ratio - 1.0) < 1e-9 and semitones == 0:
            return _fit_length(period, target)
        # Stretch with one beat of wrap-around context on each side, so the loop's end is
        # processed like its middle; then splice the seam (see `_splice_head`).
        context = min(period.shape[1], round(60.0 / tempo * sample_rate))
        extended = np.concatenate([period[:, -context:], period, period[:, :context]], axis=1)
        stretched = _stretch(stem, extended, sample_rate, ratio, semitones, mode)
        start = round(context / ratio)
        return _splice_head(stretched, start=start, length=target, sample_rate=sample_rate)

    return cached(cache_dir, key, compute), ratio


def conform_oneshot(stem: StemRecord, *, semitones: int, sample_rate: int, cache_dir: Path,
                    categories: CategoryTable) -> np.ndarray:
    """Return the one-shot at `sample_rate`, pitch-shifted by `semitones` (timing kept), cut to
    `ONESHOT_MAX_SECONDS` and faded out over its last 3 ms. `categories` says how the stem's
    category is pitch-shifted (`transient_mode`)."""
    mode = transient_mode(categories[stem.category])
    key = ("oneshot", stem.content_hash, sample_rate, semitones, mode, CONFORM_VERSION)

    def compute() -> np.ndarray:
        audio = read_audio(stem.path, sample_rate=sample_rate)
        audio = audio[:, :round(ONESHOT_MAX_SECONDS * sample_rate)]
        if semitones:
            audio = _stretch(stem, audio, sample_rate, 1.0, semitones, mode)
        fade = min(audio.shape[1], max(1, round(ONESHOT_FADE_SECONDS * sample_rate)))
        audio[:, audio.shape[1] - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return audio

    return cached(cache_dir, key, compute)


def cache_path(cache_dir: Path, key: tuple) -> Path:
    """The cache file for `key`: ``conform-v<CONFORM_VERSION>-<hash of key>.npy``, so files
    of an older conform version are recognised (and pruned first) by name alone."""
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{_CACHE_PREFIX}v{CONFORM_VERSION}-{digest}.npy"


def cached(cache_dir: Path, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load the array cached under `key`, or compute, store (atomically) and return it.

    The cache only saves time: a damaged entry is recomputed, an unwritable folder is logged
    and skipped. A hit sets the file's modification time, which `prune_cache` reads as
    last use (access times are not kept on relatime or noatime mounts)."""
    path = cache_path(cache_dir, key)
    if path.is_file():
        try:
            audio = np.load(path, allow_pickle=False)
            if audio.ndim == 2 and audio.shape[0] == 2 and audio.dtype == np.float32:
                with contextlib.suppress(OSError):  # a read-only cache still serves
                    os.utime(path)
                return audio
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed and replaced
    audio = np.ascontiguousarray(compute(), dtype=np.float32)
    try:
        with fsutil.atomic_output(path) as temp, open(temp, "wb") as stream:
            np.save(stream, audio)  # a stream: np.save would append ".npy" to a path
    except OSError as exc:  # a full disk slows the next render, it does not fail this one
        log.warning("%s", cache_fault_line(exc, path.parent))
    return audio


@dataclass(frozen=True)
class PrunedFile:
    """A cache file `prune_cache` deleted, its size in bytes and why."""

    path: Path
    size: int
    reason: str  # "stale version" | "least recently used"


def prune_cache(cache_dir: Path, max_bytes: int) -> list[PrunedFile]:
    """Delete conform cache files until the rest take at most `max_bytes`.

    Files of another conform version go first (no render reads them again), then the
    least recently used (oldest modification time; `cached` sets it on every hit). Other
    files in the folder (the classifier, caches of other tools) are not touched.
    Returns what was deleted, in order.
    """
    current, stale = [], []
    for path in Path(cache_dir).glob(f"{_CACHE_PREFIX}*.npy"):
        try:
            stat = path.stat()
        except OSError:
            continue  # removed meanwhile
        fresh = path.name.startswith(f"{_CACHE_PREFIX}v{CONFORM_VERSION}-")
        (current if fresh else stale).append((stat.st_mtime_ns, path.name, path, stat.st_size))
    doomed = [(path, size, "stale version") for _, _, path, size in sorted(stale)]
    total = sum(size for *_, size in current)
    for _, _, path, size in sorted(current):
        if total <= max_bytes:
            break
        doomed.append((path, size, "least recently used"))
        total -= size
    return [PrunedFile(path, size, reason) for path, size, reason in doomed
            if _unlink(path)]


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False  # another process pruned it first
    except OSError as exc:
        log.warning("%s: cannot prune the conform cache: %s", path, exc)
        return False
    return True


def transient_mode(traits: CategoryRule) -> str:
    """Rubber Band's transient handling for a category: ``percussive`` ones (drums) stay
    crisp, ``sustained`` ones (pads, atmospheres) smooth (no phase resets that tick in long
    tones), the rest mixed."""
    if traits.percussive:
        return "crisp"
    return "smooth" if traits.sustained else "mixed"


def _stretch(stem: StemRecord, audio: np.ndarray, sample_rate: int, ratio: float,
             semitones: int, mode: str) -> np.ndarray:
    """Rubber Band through pedalboard (a ratio above 1 plays faster, shorter), with its time
    map corrected: the stretcher's hop sizes are whole samples, so the tempo it really
    delivers drifts from the one asked for (0.06-0.2 %, up to 12 ms over a 4-bar loop). The
    drift is measured once per setting (`_time_map`) and undone by resampling the output by
    that tiny factor (a pitch change of a few cents at most)."""
    try:
        stretched = pedalboard.time_stretch(audio, float(sample_rate),
                                            stretch_factor=float(ratio),
                                            pitch_shift_in_semitones=float(semitones),
                                            transient_mode=mode)
    except (RuntimeError, ValueError) as exc:
        raise RenderError(f"{stem.path}: time-stretch failed: {exc}") from exc
    slope, offset = _time_map(float(ratio), int(semitones), int(sample_rate))
    warp = ratio * slope  # output samples per wanted output sample
    shift = round(offset)
    aligned = stretched[:, shift:] if shift >= 0 else np.pad(stretched, ((0, 0), (-shift, 0)))
    if abs(warp - 1.0) < 1e-6:
        return np.ascontiguousarray(aligned)
    warped = soxr.resample(aligned.T, sample_rate * warp, sample_rate, quality="HQ").T
    return np.ascontiguousarray(warped, dtype=np.float32)


@lru_cache(maxsize=64)
def _time_map(ratio: float, semitones: int, sample_rate: int) -> tuple[float, float]:
    """(slope, offset) of the stretcher's real time map: an event at input sample t comes out
    at ``offset + slope * t``. Measured on a train of noise bursts, one every 250 ms."""
    spacing = round(0.25 * sample_rate)
    burst = np.random.default_rng(0).standard_normal(round(0.005 * sample_rate))
    burst *= np.exp(-np.linspace(0.0, 6.0, burst.size))  # 5 ms, decaying
    clicks = np.zeros((1, CALIBRATION_BURSTS * spacing), dtype=np.float32)
    for index in range(CALIBRATION_BURSTS):
        clicks[0, index * spacing:index * spacing + burst.size] = 0.8 * burst
    out = pedalboard.time_stretch(clicks, float(sample_rate), stretch_factor=ratio,
                                  pitch_shift_in_semitones=float(semitones))[0]
    onsets = _burst_onsets(out, gap=spacing / (2 * ratio))
    if onsets.size < CALIBRATION_BURSTS // 2:
        return 1.0 / ratio, 0.0  # nothing measurable: trust the nominal map
    # The detector fires a few samples into a burst; measure that on the input too.
    bias = _burst_onsets(clicks[0, :spacing], gap=spacing)[0]
    # The drift stays far below half a spacing, so each onset's burst is the nearest one.
    bursts = np.round(onsets * ratio / spacing) * spacing + bias
    slope, offset = np.polyfit(bursts, onsets, 1)
    return float(slope), float(offset)


def _burst_onsets(signal: np.ndarray, *, gap: float) -> np.ndarray:
    """First sample of each run above half the peak; runs closer than `gap` are one burst."""
    above = np.abs(signal) > 0.5 * np.abs(signal).max()
    rises = np.flatnonzero(above & ~np.r_[False, above[:-1]])
    return rises[np.r_[True, np.diff(rises) > gap]]


def _splice_head(stretched: np.ndarray, *, start: int, length: int,
                 sample_rate: int) -> np.ndarray:
    """Cut one period (`length` samples from `start`) out of a stretched periodic signal so
    that it tiles without a click.

    Rubber Band keeps the tempo but places transients with a few ms of jitter, so the period
    after the cut is not a sample-exact copy of the one before it. The loop's head is
    therefore taken from the audio that followed its tail (the join between tiles is then
    the stretcher's own continuous output) up to a splice point where the two copies differ
    least, and crossfaded into the body there.
    """
    body = _fit_length(stretched[:, start:start + length], length)
    head = stretched[:, start + length:start + 2 * length]
    fade = round(SEAM_SECONDS * sample_rate)
    frames = (head.shape[1] - fade) // fade
    if frames < 2:
        return body
    span = frames * fade
    mismatch = ((head[:, :span] - body[:, :span]) ** 2).sum(axis=0).reshape(frames, fade)
    splice = int(np.argmin(mismatch.sum(axis=1))) * fade
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    loop = body.copy()
    loop[:, :splice] = head[:, :splice]
    loop[:, splice:splice + fade] = (head[:, splice:splice + fade] * (1.0 - ramp)
                                     + body[:, splice:splice + fade] * ramp)
    return loop


def _tile(audio: np.ndarray, length: int) -> np.ndarray:
    """Repeat `audio` end to start until it is `length` samples long (then cut)."""
    repeats = -(-length // audio.shape[1])
    return np.tile(audio, (1, repeats))[:, :length]


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad `audio` to exactly `length` samples."""
    if audio.shape[1] >= length:
        return np.ascontiguousarray(audio[:, :length])
    return np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
