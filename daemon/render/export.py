"""WAV files with section cue markers, and JSON, written atomically (`daemon.fsutil`).

The RIFF is written by hand so it can carry markers a DAW shows: a ``cue `` chunk with one
cue point per section start and a ``LIST``/``adtl`` chunk with a ``labl`` name for each.
Layout: ``RIFF/WAVE`` → ``fmt `` → (``fact``) → ``cue `` → ``LIST`` → ``data``. `WavWriter`
streams blocks into a temporary file beside the target, which replaces it only when complete,
so a reader never sees half a file. `write_wav_stream` writes into a stream that cannot seek
(a member of a zip file), so it needs the length up front.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from daemon.errors import RenderError
from daemon.fsutil import atomic_output, write_text_atomic

PCM, IEEE_FLOAT = 1, 3  # WAVE format tags
BLOCK = 1 << 18  # frames converted per write when writing a whole array


@dataclass(frozen=True)
class Cue:
    """A marker at sample frame `position` named `label`."""

    position: int
    label: str


class WavWriter:
    """Stream ``(channels, n)`` float blocks into a WAV (16/24-bit PCM or 32-bit float).

    Use as a context manager: on success the file is completed and moved into place, on an
    exception the temporary file is removed and the target is left untouched.
    """

    def __init__(self, path: Path, *, sample_rate: int, bit_depth: int = 24, channels: int = 2,
                 cues: Sequence[Cue] = ()) -> None:
        _check_depth(path, bit_depth)
        self.path = Path(path)
        self.sample_rate, self.bit_depth, self.channels = sample_rate, bit_depth, channels
        self.frames = 0
        self._exit = contextlib.ExitStack()
        try:
            temp = self._exit.enter_context(atomic_output(self.path))
            # The stream lives as long as the writer; the exit stack closes it.
            self._stream: BinaryIO = self._exit.enter_context(open(temp, "wb"))  # noqa: SIM115
            self._stream.write(wav_header(sample_rate=sample_rate, bit_depth=bit_depth,
                                          channels=channels, cues=cues, frames=0))
        except OSError as exc:
            self._exit.close()
            raise RenderError(f"{self.path}: cannot write: {exc.strerror or exc}") from exc
        self._data_at = self._stream.tell()  # first byte of the audio

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def write(self, block: np.ndarray) -> None:
        """Append ``(channels, n)`` float samples (clipped to full scale for PCM)."""
        self._stream.write(encode_frames(block, self.bit_depth))
        self.frames += block.shape[1]

    def write_silence(self, frames: int) -> None:
        """Append `frames` frames of silence. Silence is zero bytes in every supported format,
        so it is skipped over rather than written: the file gets a hole, which reads as zeros
        and, on filesystems with sparse files, costs no disk writes (long lane exports are
        mostly silence)."""
        if frames > 0:
            self._stream.seek(frames * self.channels * self.bit_depth // 8, os.SEEK_CUR)
            self.frames += frames

    def close(self) -> None:
        """Fill in the sizes, flush to disk and move the file into place."""
        try:
            data_bytes = self._stream.tell() - self._data_at
            if data_bytes % 2:
                self._stream.write(b"\0")  # RIFF chunks are padded to an even size
            self._stream.truncate()  # the file ends here, also after trailing silence
            riff_bytes = self._stream.tell() - 8
            self._stream.seek(4)
            self._stream.write(struct.pack("<I", riff_bytes))
            self._stream.seek(self._data_at - 4)
            self._stream.write(struct.pack("<I", data_bytes))
            if self.bit_depth == 32:
                self._stream.seek(_FACT_AT)
                self._stream.write(struct.pack("<I", self.frames))
            self._exit.close()  # closes the file, then fsyncs and renames it into place
        except OSError as exc:
            self.abort()
            raise RenderError(f"{self.path}: cannot write: {exc.strerror or exc}") from exc

    def abort(self) -> None:
        """Remove the temporary file; the target stays as it was."""
        # Unwinding the stack with an exception closes the stream and makes `atomic_output`
        # delete its temp file instead of renaming it.
        self._exit.__exit__(RenderError, RenderError(f"{self.path}: aborted"), None)


def write_wav(path: Path, audio: np.ndarray, *, sample_rate: int, bit_depth: int = 24,
              cues: Sequence[Cue] = ()) -> None:
    """Write a whole ``(channels, n)`` array as a WAV with `cues`, atomically."""
    with WavWriter(path, sample_rate=sample_rate, bit_depth=bit_depth,
                   channels=audio.shape[0], cues=cues) as writer:
        for start in range(0, audio.shape[1], BLOCK):
            writer.write(audio[:, start:start + BLOCK])


def write_wav_stream(stream: BinaryIO, blocks: Iterable[np.ndarray], *, frames: int,
                     sample_rate: int, bit_depth: int, channels: int = 2) -> None:
    """Write a WAV of exactly `frames` frames from ``(channels, n)`` float `blocks` into a
    stream that need not seek (the sizes are known up front).

    Raises
    ------
    RenderError
        The blocks hold more or fewer than `frames` frames.
    """
    _check_depth(getattr(stream, "name", "stream"), bit_depth)
    stream.write(wav_header(sample_rate=sample_rate, bit_depth=bit_depth, channels=channels,
                            frames=frames))
    written = 0
    for block in blocks:
        stream.write(encode_frames(block, bit_depth))
        written += block.shape[1]
    if written != frames:
        raise RenderError(f"{getattr(stream, 'name', 'stream')}: {written} frames written, "
                          f"{frames} announced")
    if (frames * channels * bit_depth // 8) % 2:
        stream.write(b"\0")


def read_cues(path: Path) -> list[Cue]:
    """Cue points of a WAV (position order) with their ``labl`` names ("" when unnamed).

    Walks the chunk headers and reads only the ``cue `` and ``LIST`` bodies."""
    positions: dict[int, int] = {}
    labels: dict[int, str] = {}
    for chunk_id, body in _marker_chunks(Path(path)):
        if chunk_id == b"cue ":
            (count,) = struct.unpack_from("<I", body)
            for index in range(count):
                ident, position = struct.unpack_from("<II", body, 4 + 24 * index)
                positions[ident] = position
        elif body[:4] == b"adtl":
            for sub_id, sub in _sub_chunks(body[4:]):
                if sub_id == b"labl":
                    (ident,) = struct.unpack_from("<I", sub)
                    labels[ident] = sub[4:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return sorted((Cue(pos, labels.get(ident, "")) for ident, pos in positions.items()),
                  key=lambda cue: cue.position)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented UTF-8 JSON, atomically."""
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        write_text_atomic(Path(path), text)
    except (OSError, TypeError, ValueError) as exc:
        raise RenderError(f"{path}: cannot write the report: {exc}") from exc


_FACT_AT = 12 + 8 + 18 + 8  # byte offset of the fact chunk's frame count (float files)


def wav_header(*, sample_rate: int, bit_depth: int, channels: int, frames: int,
               cues: Sequence[Cue] = ()) -> bytes:
    """RIFF header up to and including the data chunk's id and size, for `frames` frames
    (0 when the length is not known yet: `WavWriter` fills the sizes in at the end)."""
    block_align = channels * bit_depth // 8
    tag = IEEE_FLOAT if bit_depth == 32 else PCM
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block_align,
                      block_align, bit_depth)
    parts = []
    if tag == IEEE_FLOAT:  # non-PCM formats carry cbSize and a fact chunk
        parts += [_chunk(b"fmt ", fmt + struct.pack("<H", 0)),
                  _chunk(b"fact", struct.pack("<I", frames))]
    else:
        parts.append(_chunk(b"fmt ", fmt))
    if cues:
        points = b"".join(struct.pack("<II4sIII", ident, cue.position, b"data", 0, 0,
                                      cue.position) for ident, cue in enumerate(cues, 1))
        parts.append(_chunk(b"cue ", struct.pack("<I", len(cues)) + points))
        labels = b"".join(_chunk(b"labl", struct.pack("<I", ident) + cue.label.encode() + b"\0")
                          for ident, cue in enumerate(cues, 1))
        parts.append(_chunk(b"LIST", b"adtl" + labels))
    data_bytes = frames * block_align
    body = b"WAVE" + b"".join(parts) + b"data" + struct.pack("<I", data_bytes)
    riff_bytes = len(body) + data_bytes + data_bytes % 2
    return b"RIFF" + struct.pack("<I", riff_bytes) + body


def _chunk(chunk_id: bytes, body: bytes) -> bytes:
    return chunk_id + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _marker_chunks(path: Path):
    """(id, body) of the ``cue `` and ``LIST`` chunks of a RIFF/WAVE file."""
    with open(path, "rb") as stream:
        head = stream.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise RenderError(f"{path}: not a RIFF/WAVE file")
        while len(header := stream.read(8)) == 8:
            chunk_id, size = struct.unpack("<4sI", header)
            if chunk_id in (b"cue ", b"LIST"):
                yield chunk_id, stream.read(size)
                stream.seek(size % 2, os.SEEK_CUR)
            else:
                stream.seek(size + size % 2, os.SEEK_CUR)


def _sub_chunks(data: bytes):
    """(id, body) of each chunk packed in `data` (the body of a LIST chunk)."""
    offset = 0
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        yield chunk_id, data[offset + 8:offset + 8 + size]
        offset += 8 + size + (size % 2)


def encode_frames(block: np.ndarray, bit_depth: int) -> np.ndarray:
    """Interleave and encode ``(channels, n)`` float samples as little-endian PCM (clipped to
    full scale) or float32. Returns the bytes as a flat uint8 array, which any stream writes
    without another copy."""
    channels, count = block.shape
    if bit_depth == 32:
        return np.ascontiguousarray(block.T, dtype="<f4").reshape(-1).view(np.uint8)
    scale = float(2 ** (bit_depth - 1))
    scaled = block * np.float32(scale)  # the one temporary; the rest works in place
    np.clip(scaled, -scale, scale - 1, out=scaled)
    ints = np.rint(scaled, out=scaled).astype("<i4")
    if bit_depth == 16:
        return np.ascontiguousarray(ints.T, dtype="<i2").reshape(-1).view(np.uint8)
    # 24-bit: the three low bytes of each little-endian int32, interleaved by frame.
    packed = np.empty((count, channels, 3), dtype=np.uint8)
    packed[...] = ints.view(np.uint8).reshape(channels, count, 4)[:, :, :3].transpose(1, 0, 2)
    return packed.reshape(-1)


def _check_depth(path: object, bit_depth: int) -> None:
    if bit_depth not in (16, 24, 32):
        raise RenderError(f"{path}: unsupported bit depth {bit_depth} (use 16, 24 or 32)")
