"""The renderer's ear: the pitch content of a stem as chroma, computed once and cached.

A stem's chroma is its ``(12, frames)`` pitch-class profile over time (index 0 = C), from
interpolated spectral peaks (`daemon.embed.spectral.peak_chroma`) of its mono fold at
`CHROMA_RATE`. Rolling it by n pitch classes is the chroma of the audio shifted by n
semitones, so one chroma per stem serves every shift. It is cached in the conform cache
folder as ``chroma-v<CHROMA_VERSION>-<content hash>.npy`` (a few kB each); a damaged or
unwritable cache only costs the time to compute it again.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from daemon import fsutil
from daemon.embed.spectral import peak_chroma, power_stft
from daemon.faults import cache_fault_line
from daemon.render.conform import read_audio
from daemon.store.records import StemRecord

log = logging.getLogger("traum.render")

#: 11.025 kHz keeps every fundamental and the low partials that name a note, at a quarter
#: of the cost of 44.1 kHz.
CHROMA_RATE = 11025
N_FFT = 4096  # 371 ms window: 2.7 Hz bins, which peak interpolation resolves to a few cents
HOP = 1024  # 93 ms: several frames per beat at any dance tempo
LOW_HZ, HIGH_HZ = 30.0, 2000.0  # from the lowest bass fundamental to the upper partials
FRAME_SECONDS = HOP / CHROMA_RATE
CHROMA_VERSION = 1  # bump when the computation changes, so stale cache files are ignored
_PREFIX = "chroma-"


def stem_chroma(stem: StemRecord, *, cache_dir: Path) -> np.ndarray:
    """The chroma ``(12, frames)`` float32 of `stem` (frames `FRAME_SECONDS` apart), from the
    cache or computed and cached.

    Raises
    ------
    RenderError
        The stem's file cannot be decoded.
    """
    path = Path(cache_dir) / f"{_PREFIX}v{CHROMA_VERSION}-{stem.content_hash[:32]}.npy"
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):
            frames = np.load(path, allow_pickle=False)
            if frames.ndim == 2 and frames.shape[0] == 12:
                return frames
    frames = audio_chroma(read_audio(stem.path, sample_rate=CHROMA_RATE))
    try:
        with fsutil.atomic_output(path) as temp, open(temp, "wb") as stream:
            np.save(stream, frames)
    except OSError as exc:  # the cache saves time only
        log.warning("%s", cache_fault_line(exc, path.parent))
    return frames


def audio_chroma(audio: np.ndarray) -> np.ndarray:
    """Chroma ``(12, frames)`` float32 of ``(channels, n)`` audio at `CHROMA_RATE`."""
    power = power_stft(np.asarray(audio, dtype=np.float32).mean(axis=0), n_fft=N_FFT, hop=HOP)
    return peak_chroma(power, sample_rate=CHROMA_RATE, n_fft=N_FFT, low_hz=LOW_HZ,
                       high_hz=HIGH_HZ)


def beat_chroma(frames: np.ndarray, *, beat_seconds: float | None) -> np.ndarray:
    """Beat-synchronous chroma ``(12, beats)``: the frames summed per beat of
    `beat_seconds` from the first sample (loops start on the downbeat), each beat scaled to
    unit length; silent beats stay zero. None (a one-shot): one column for the whole stem."""
    if beat_seconds is None or beat_seconds <= 0:
        beats = frames.sum(axis=1, keepdims=True)
    else:
        index = np.floor(np.arange(frames.shape[1]) * FRAME_SECONDS / beat_seconds).astype(int)
        beats = np.zeros((12, int(index[-1]) + 1 if index.size else 1))
        np.add.at(beats.T, index, frames.T)
    norms = np.linalg.norm(beats, axis=0, keepdims=True)
    return np.divide(beats, norms, out=np.zeros_like(beats, dtype=np.float64),
                     where=norms > 0)
