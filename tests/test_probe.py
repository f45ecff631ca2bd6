"""Decoding by content: formats, rates, channel counts, and damaged files."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from daemon.errors import IngestError
from daemon.ingest.probe import decode_audio

SR = 44100


def tone(seconds: float = 0.5, *, rate: int = SR, channels: int = 2) -> np.ndarray:
    """(frames, channels) test signal: a different sine per channel."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)],
                    axis=1).astype(np.float32)


def probe_error(path: Path) -> IngestError:
    with pytest.raises(IngestError) as caught:
        decode_audio(path)
    assert str(path) in str(caught.value)  # the message names the file
    return caught.value


@pytest.mark.parametrize(("suffix", "fmt", "subtype"), [
    (".wav", "WAV", "PCM_16"), (".flac", "FLAC", "PCM_24"), (".ogg", "OGG", "VORBIS"),
    (".aiff", "AIFF", "PCM_16"), (".mp3", "MP3", "MPEG_LAYER_III"),
])
def test_formats_decode(tmp_path: Path, suffix: str, fmt: str, subtype: str) -> None:
    data = tone()
    path = tmp_path / f"clip{suffix}"
    sf.write(path, data, SR, subtype=subtype)
    decoded = decode_audio(path)
    assert (decoded.format, decoded.sample_rate, decoded.channels) == (fmt, SR, 2)
    assert decoded.audio.dtype == np.float32 and decoded.audio.shape == (2, decoded.frames)
    assert abs(decoded.frames - len(data)) <= 0.01 * len(data) + 2000  # codec padding
    if fmt in ("WAV", "FLAC", "AIFF"):  # lossless: the samples come back
        np.testing.assert_allclose(decoded.audio, data.T, atol=1e-3)


def test_wav_named_ogg_decodes_by_content(tmp_path: Path) -> None:
    path = tmp_path / "Kick.ogg"
    sf.write(path, tone(), SR, format="WAV")
    assert decode_audio(path).format == "WAV"


def test_8k_mono_and_96k_six_channels(tmp_path: Path) -> None:
    mono = tmp_path / "phone.wav"
    sf.write(mono, tone(1.0, rate=8000, channels=1), 8000)
    decoded = decode_audio(mono)
    assert (decoded.sample_rate, decoded.channels, decoded.frames) == (8000, 1, 8000)
    surround = tmp_path / "surround.wav"
    sf.write(surround, tone(0.25, rate=96000, channels=6), 96000)
    decoded = decode_audio(surround)
    assert (decoded.sample_rate, decoded.channels, decoded.audio.shape) == (96000, 6,
                                                                             (6, 24000))


def test_pedalboard_reads_what_libsndfile_rejects(tmp_path: Path) -> None:
    # Ogg Vorbis inside a RIFF/WAVE container (format tag 0x674F), as in Debian's lmms
    # effects/scratch01.ogg: libsndfile calls the fmt chunk malformed, JUCE decodes it.
    buffer = io.BytesIO()
    sf.write(buffer, tone(0.5, channels=1), SR, format="OGG")
    ogg = buffer.getvalue()
    fmt = struct.pack("<HHIIHHH", 0x674F, 1, SR, 2 * SR, 2, 16, 8) + bytes(8)
    body = (b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data"
            + struct.pack("<I", len(ogg)) + ogg)
    path = tmp_path / "wrapped.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(sf.LibsndfileError):
        sf.read(path)
    decoded = decode_audio(path)
    assert (decoded.format, decoded.channels, decoded.frames) == ("WAV", 1, int(0.5 * SR))
    assert np.max(np.abs(decoded.audio)) > 0.2


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert probe_error(path).reason == "empty"


def test_zero_frames(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 2), np.float32), SR)
    assert probe_error(path).reason == "empty"


def test_text_named_wav_is_undecodable(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are not the samples you are looking for\n" * 20)
    assert probe_error(path).reason == "undecodable"


@pytest.mark.parametrize("suffix", [".wav", ".aiff", ".flac", ".ogg"])
@pytest.mark.parametrize("keep", [0.004, 0.5, 0.995])
def test_truncated_files_are_refused(tmp_path: Path, suffix: str, keep: float) -> None:
    whole = tmp_path / f"whole{suffix}"
    sf.write(whole, tone(1.0), SR)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: max(12, int(len(data) * keep))])
    assert probe_error(cut).reason in ("truncated", "undecodable")


def test_unsupported_rate(tmp_path: Path) -> None:
    path = tmp_path / "slow.wav"
    sf.write(path, tone(0.5, rate=4000, channels=1), 4000)
    assert probe_error(path).reason == "unsupported"
