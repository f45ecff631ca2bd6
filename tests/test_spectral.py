"""The numpy spectral blocks match librosa, which the service must not import (numba)."""

from __future__ import annotations

import subprocess
import sys

import librosa
import numpy as np
import pytest

from daemon.embed.spectral import chroma_filterbank, mel_filterbank, power_stft


@pytest.mark.parametrize("size", [100, 2047, 22050, 60000])
def test_power_stft_matches_librosa(size: int) -> None:
    rng = np.random.default_rng(size)
    y = rng.standard_normal(size).astype(np.float32)
    expected = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    got = power_stft(y, n_fft=2048, hop=512)
    assert got.shape == expected.shape
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.max())


@pytest.mark.parametrize(("sample_rate", "n_fft", "n_mels"),
                         [(22050, 2048, 64), (44100, 4096, 128), (16000, 512, 40)])
def test_mel_filterbank_matches_librosa(sample_rate: int, n_fft: int, n_mels: int) -> None:
    expected = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    got = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("sample_rate", "n_fft"), [(22050, 2048), (22050, 4096), (44100, 1024)])
def test_chroma_filterbank_matches_librosa(sample_rate: int, n_fft: int) -> None:
    expected = librosa.filters.chroma(sr=sample_rate, n_fft=n_fft, tuning=0.0, octwidth=None)
    got = chroma_filterbank(sample_rate=sample_rate, n_fft=n_fft)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_cached_filterbanks_cannot_be_changed_by_a_caller() -> None:
    bank = mel_filterbank(sample_rate=22050, n_fft=2048, n_mels=64)
    with pytest.raises(ValueError, match="read-only"):
        bank[0, 0] = 1.0


def test_analysis_never_imports_numba() -> None:
    # The systemd unit keeps MemoryDenyWriteExecute=yes only because nothing on the
    # ingest and render paths imports numba (whose import needs write+execute memory).
    code = ("import sys, numpy as np\n"
            "from daemon.embed.features import embed_features\n"
            "from daemon.ingest.features import mel_filters\n"
            "y = np.random.default_rng(0).standard_normal(44100).astype(np.float32)\n"
            "embed_features(y=y, sample_rate=44100)\n"
            "mel_filters(sample_rate=22050, n_fft=2048, bands=40)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300)
    assert done.stdout.strip() == "[]"
