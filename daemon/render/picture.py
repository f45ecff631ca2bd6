"""A spectrogram picture of a rendered track, as an RGB array (numpy only).

Producers glance at it to see the arrangement: sections, drops, the riser before a drop.
The frequency axis is logarithmic (30 Hz to Nyquist) because music lives in octaves. The
arrangement picture (`daemon.render.outputs.arrangement_png`) shows it as a strip under the
lanes.
"""

from __future__ import annotations

import numpy as np

_FFT = 2048
_LOW_HZ = 30.0
_FLOOR_DB = -90.0  # darkest colour; quieter bins are clipped here


def spectrogram_image(audio: np.ndarray, sample_rate: int, *, width: int = 1200,
                      height: int = 400) -> np.ndarray:
    """RGB uint8 image (height, width, 3) of the mono sum of `audio` ((channels, n) or (n,)).

    Columns are equal time slices, rows log-spaced frequencies (low at the bottom), colour
    is level from `_FLOOR_DB` (black) to 0 dBFS (white). Only the `width` analysed frames are
    copied out of `audio`, so a long track costs no full-length temporaries.
    """
    audio = audio if audio.ndim == 2 else audio[None, :]
    hop = max(1, (audio.shape[1] - _FFT) // max(1, width - 1))
    frames = np.zeros((width, _FFT), dtype=np.float32)
    for column in range(width):
        window = audio[:, column * hop:column * hop + _FFT].mean(axis=0)
        frames[column, :window.size] = window
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(_FFT), axis=1)) / (_FFT / 4)
    freqs = np.fft.rfftfreq(_FFT, 1.0 / sample_rate)
    rows = np.geomspace(_LOW_HZ, sample_rate / 2, height)
    bins = np.clip(np.searchsorted(freqs, rows), 0, freqs.size - 1)
    level = 20 * np.log10(spectrum[:, bins].T + 1e-9)
    value = np.clip((level - _FLOOR_DB) / -_FLOOR_DB, 0.0, 1.0)[::-1]
    return _colour(value)


def _colour(value: np.ndarray) -> np.ndarray:
    """A black → purple → orange → white ramp (perceptually ordered, like 'inferno')."""
    stops = np.array([[0, 0, 0], [80, 18, 123], [230, 90, 40], [252, 200, 60],
                      [255, 255, 255]], dtype=np.float32)
    position = value * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    fraction = (position - low)[..., None]
    return (stops[low] * (1 - fraction) + stops[low + 1] * fraction).astype(np.uint8)
