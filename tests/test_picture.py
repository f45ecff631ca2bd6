"""The spectrogram image: rows and columns mean frequency and time, silence is black."""

from __future__ import annotations

import numpy as np

from daemon.render.picture import spectrogram_image

SR = 22050


def test_low_tone_then_high_tone():
    t = np.arange(SR * 2) / SR
    audio = np.where(t < 1.0, np.sin(2 * np.pi * 60 * t), np.sin(2 * np.pi * 6000 * t)) * 0.5
    image = spectrogram_image(np.stack([audio, audio]).astype(np.float32), SR, width=200,
                              height=100)
    assert image.shape == (100, 200, 3)
    assert image.dtype == np.uint8
    brightness = image.astype(float).sum(axis=2)
    bottom, top = brightness[75:], brightness[:25]
    assert bottom[:, :90].mean() > 3 * bottom[:, 110:].mean()  # 60 Hz only in the first half
    assert top[:, 110:].mean() > 3 * top[:, :90].mean()  # 6 kHz only in the second half


def test_mono_input_reads_like_stereo():
    t = np.arange(SR) / SR
    mono = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    assert np.array_equal(spectrogram_image(mono, SR, width=40, height=30),
                          spectrogram_image(np.stack([mono, mono]), SR, width=40, height=30))


def test_silence_is_black():
    image = spectrogram_image(np.zeros((2, SR), np.float32), SR, width=50, height=20)
    assert image.max() == 0
