"""Decode an audio file by its content, whatever its name says.

libsndfile (via soundfile) reads WAV, AIFF, FLAC, OGG and MP3 quickly; pedalboard's
``AudioFile`` (JUCE) is the fallback for headers libsndfile rejects. A RIFF/WAVE file whose
data chunk promises more bytes than the file holds is refused as truncated, because both
decoders would otherwise silently return the shorter audio.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from daemon.errors import IngestError

#: Sample rates we accept: telephone quality up to high-resolution studio audio.
MIN_RATE, MAX_RATE = 8_000, 192_000
_MAGIC = ((b"RIFF", "WAV"), (b"RF64", "WAV"), (b"fLaC", "FLAC"), (b"OggS", "OGG"),
          (b"FORM", "AIFF"), (b"ID3", "MP3"), (b"\xff\xfb", "MP3"), (b"\xff\xf3", "MP3"),
          (b"\xff\xf2", "MP3"))


@dataclass(frozen=True)
class Decoded:
    """Decoded audio: float32 ``(channels, frames)`` as stored in the file."""

    audio: np.ndarray
    sample_rate: int
    channels: int
    frames: int
    format: str  # "WAV", "FLAC", "MP3", "OGG", "AIFF", ...


def decode_audio(path: Path) -> Decoded:
    """Decode `path` by content (a WAV named ``.ogg`` decodes as WAV).

    Raises
    ------
    IngestError
        ``empty`` (zero bytes or zero frames), ``truncated`` (data cut short),
        ``undecodable`` (no decoder understands it), ``unsupported`` (sample rate
        outside 8-192 kHz). The message names the path.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise IngestError(path, "undecodable", f"cannot read: {exc.strerror}") from exc
    if size == 0:
        raise IngestError(path, "empty", "file has zero bytes")
    fmt = sniff_format(head)
    if fmt in ("WAV", "AIFF"):
        _check_chunks_complete(path, size, fmt)
    elif fmt == "OGG":
        _check_ogg_complete(path, size)
    audio, rate, detected = _decode_any(path)
    return _validated(path, audio, rate, fmt or detected)


def sniff_format(head: bytes) -> str | None:
    """Container name from the first bytes of a file, or None when unrecognised."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _decode_any(path: Path) -> tuple[np.ndarray, int, str]:
    try:
        handle = soundfile.SoundFile(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as first:
        try:
            return _decode_pedalboard(path)
        except Exception as second:  # noqa: BLE001 - JUCE raises plain RuntimeError/ValueError
            raise IngestError(path, "undecodable",
                              f"soundfile: {first}; pedalboard: {second}") from second
    with handle:
        declared = handle.frames
        try:
            audio = handle.read(dtype="float32", always_2d=True).T
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            # The header parsed but the stream did not: data is cut or corrupt.
            raise IngestError(path, "truncated", f"decoding stopped: {exc}") from exc
        # MP3 frame counts come from the Xing header, which libsndfile trusts; a 1 %
        # allowance covers encoder padding while a cut file falls far short.
        if 0 < audio.shape[1] < declared * 0.99:
            raise IngestError(path, "truncated", f"{audio.shape[1]} of {declared} frames")
        return audio, handle.samplerate, handle.format


def _decode_pedalboard(path: Path) -> tuple[np.ndarray, int, str]:
    from pedalboard.io import AudioFile  # imported lazily: JUCE start-up is not free

    with AudioFile(str(path)) as handle:
        audio = handle.read(handle.frames)
        return np.asarray(audio, dtype=np.float32), int(handle.samplerate), ""


def _validated(path: Path, audio: np.ndarray, rate: float, fmt: str) -> Decoded:
    channels, frames = audio.shape
    if frames == 0 or channels == 0:
        raise IngestError(path, "empty", "no audio frames")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise IngestError(path, "unsupported", f"sample rate {rate:g} Hz outside "
                          f"{MIN_RATE}-{MAX_RATE} Hz")
    return Decoded(audio=np.ascontiguousarray(audio, dtype=np.float32), sample_rate=int(rate),
                   channels=channels, frames=frames, format=fmt.upper() or "UNKNOWN")


def _check_chunks_complete(path: Path, size: int, fmt: str) -> None:
    """Walk RIFF/AIFF chunks up to the sample data; refuse a file that ends before it does.

    WAV is little-endian with its samples in ``data``; AIFF is big-endian with ``SSND``.
    """
    order, data_id = ("<I", b"data") if fmt == "WAV" else (">I", b"SSND")
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[8:12] not in (b"WAVE", b"AIFF", b"AIFC"):
            raise IngestError(path, "truncated", "container header cut short")
        offset = 12
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                raise IngestError(path, "truncated", "file ends before the audio data")
            chunk_id, chunk_size = chunk[:4], struct.unpack(order, chunk[4:])[0]
            if chunk_id == data_id:
                # RF64 stores 0xFFFFFFFF here and the real size in ds64; trust the decoder.
                if chunk_size != 0xFFFFFFFF and offset + 8 + chunk_size > size:
                    raise IngestError(path, "truncated", f"audio data promises {chunk_size} "
                                      f"bytes, file holds {size - offset - 8}")
                return
            offset += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned
            handle.seek(offset)


def _check_ogg_complete(path: Path, size: int) -> None:
    """An Ogg stream ends with a page flagged end-of-stream; a cut file lacks it."""
    tail = min(size, 1 << 16)  # Ogg pages are at most ~64 KiB
    with open(path, "rb") as handle:
        handle.seek(size - tail)
        data = handle.read(tail)
    last = data.rfind(b"OggS")
    end_of_stream = 0x04  # header_type flag (RFC 3533, section 6)
    if last < 0 or len(data) < last + 27 or not data[last + 5] & end_of_stream:
        raise IngestError(path, "truncated", "Ogg stream has no end-of-stream page")
    segments = data[last + 26]  # the page header is 27 bytes, then the lacing table
    page_end = last + 27 + segments + sum(data[last + 27: last + 27 + segments])
    if page_end > len(data):
        raise IngestError(path, "truncated", "last Ogg page is cut short")
