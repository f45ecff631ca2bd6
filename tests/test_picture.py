"""The spectrogram PNG: a valid image whose rows and columns mean frequency and time."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from daemon.render.picture import spectrogram_image, write_png

SR = 22050


def decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    raw = zlib.decompress(data[idat + 4:idat + 4 + length])
    rows = np.frombuffer(raw, np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()  # filter type "none" on every row
    return rows[:, 1:].reshape(height, width, 3)


def test_low_tone_then_high_tone(tmp_path):
    t = np.arange(SR * 2) / SR
    audio = np.where(t < 1.0, np.sin(2 * np.pi * 60 * t), np.sin(2 * np.pi * 6000 * t)) * 0.5
    image = decode_png(write_png(tmp_path / "s.png", spectrogram_image(
        np.stack([audio, audio]).astype(np.float32), SR, width=200, height=100)).read_bytes())
    assert image.shape == (100, 200, 3)
    brightness = image.astype(float).sum(axis=2)
    bottom, top = brightness[75:], brightness[:25]
    assert bottom[:, :90].mean() > 3 * bottom[:, 110:].mean()  # 60 Hz only in the first half
    assert top[:, 110:].mean() > 3 * top[:, :90].mean()  # 6 kHz only in the second half


def test_silence_is_black(tmp_path):
    image = spectrogram_image(np.zeros((2, SR), np.float32), SR, width=50, height=20)
    assert image.max() == 0
