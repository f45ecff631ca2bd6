"""A spectrogram picture of a rendered track, as PNG, with numpy and zlib only.

Producers glance at it to see the arrangement: sections, drops, the riser before a drop.
The frequency axis is logarithmic (30 Hz to Nyquist) because music lives in octaves.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from daemon.fsutil import TEMP_SUFFIX

_FFT = 2048
_LOW_HZ = 30.0
_FLOOR_DB = -90.0  # darkest colour; quieter bins are clipped here


def spectrogram_image(audio: np.ndarray, sample_rate: int, *, width: int = 1200,
                      height: int = 400) -> np.ndarray:
    """RGB uint8 image (height, width, 3) of the mono sum of `audio` ((channels, n) or (n,)).

    Columns are equal time slices, rows log-spaced frequencies (low at the bottom), colour
    is level from `_FLOOR_DB` (black) to 0 dBFS (white).
    """
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    hop = max(1, (mono.size - _FFT) // max(1, width - 1))
    starts = np.arange(width) * hop
    padded = np.pad(mono.astype(np.float32), (0, max(0, _FFT + int(starts[-1]) - mono.size)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, _FFT)[starts]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(_FFT), axis=1)) / (_FFT / 4)
    freqs = np.fft.rfftfreq(_FFT, 1.0 / sample_rate)
    rows = np.geomspace(_LOW_HZ, sample_rate / 2, height)
    bins = np.clip(np.searchsorted(freqs, rows), 0, freqs.size - 1)
    level = 20 * np.log10(spectrum[:, bins].T + 1e-9)
    value = np.clip((level - _FLOOR_DB) / -_FLOOR_DB, 0.0, 1.0)[::-1]
    return _colour(value)


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as a PNG atomically (temp name, then rename)."""
    height, width, _ = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(height))
    chunks = [_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)),
              _chunk(b"IDAT", zlib.compress(raw, 6)), _chunk(b"IEND", b"")]
    temp = path.with_name(path.name + TEMP_SUFFIX)
    temp.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(chunks))
    temp.replace(path)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _colour(value: np.ndarray) -> np.ndarray:
    """A black → purple → orange → white ramp (perceptually ordered, like 'inferno')."""
    stops = np.array([[0, 0, 0], [80, 18, 123], [230, 90, 40], [252, 200, 60],
                      [255, 255, 255]], dtype=np.float32)
    position = value * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    fraction = (position - low)[..., None]
    return (stops[low] * (1 - fraction) + stops[low + 1] * fraction).astype(np.uint8)
