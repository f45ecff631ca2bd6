"""WAV files with section cue markers, and the JSON report, written atomically.

The RIFF is written by hand so it can carry markers a DAW shows: a ``cue `` chunk with one
cue point per section start and a ``LIST``/``adtl`` chunk with a ``labl`` name for each.
Layout: ``RIFF/WAVE`` → ``fmt `` → (``fact``) → ``cue `` → ``LIST`` → ``data``. Audio streams in
blocks into a temporary file in the target folder, which replaces the target only when
complete, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from daemon.errors import RenderError

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
        if bit_depth not in (16, 24, 32):
            raise RenderError(f"{path}: unsupported bit depth {bit_depth} (use 16, 24 or 32)")
        self.path = Path(path)
        self.sample_rate, self.bit_depth, self.channels = sample_rate, bit_depth, channels
        self.frames = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                        suffix=".tmp")
        self._temp = Path(temp)
        self._stream: BinaryIO = os.fdopen(handle, "wb")
        self._stream.write(_header(sample_rate, bit_depth, channels, cues))
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
        self._stream.write(_encode(block, self.bit_depth))
        self.frames += block.shape[1]

    def write_silence(self, frames: int) -> None:
        for start in range(0, max(0, frames), BLOCK):
            self.write(np.zeros((self.channels, min(BLOCK, frames - start)), dtype=np.float32))

    def close(self) -> None:
        """Fill in the sizes, flush to disk and move the file into place."""
        try:
            data_bytes = self._stream.tell() - self._data_at
            if data_bytes % 2:
                self._stream.write(b"\0")  # RIFF chunks are padded to an even size
            riff_bytes = self._stream.tell() - 8
            self._stream.seek(4)
            self._stream.write(struct.pack("<I", riff_bytes))
            self._stream.seek(self._data_at - 4)
            self._stream.write(struct.pack("<I", data_bytes))
            if self.bit_depth == 32:
                self._stream.seek(_FACT_AT)
                self._stream.write(struct.pack("<I", self.frames))
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            os.replace(self._temp, self.path)
        except OSError as exc:
            self.abort()
            raise RenderError(f"{self.path}: cannot write: {exc}") from exc

    def abort(self) -> None:
        self._stream.close()
        self._temp.unlink(missing_ok=True)


def write_wav(path: Path, audio: np.ndarray, *, sample_rate: int, bit_depth: int = 24,
              cues: Sequence[Cue] = ()) -> None:
    """Write a whole ``(channels, n)`` array as a WAV with `cues`, atomically."""
    with WavWriter(path, sample_rate=sample_rate, bit_depth=bit_depth,
                   channels=audio.shape[0], cues=cues) as writer:
        for start in range(0, audio.shape[1], BLOCK):
            writer.write(audio[:, start:start + BLOCK])


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
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=2, ensure_ascii=False)
            stream.write("\n")
        os.replace(temp, path)
    except (OSError, TypeError, ValueError) as exc:
        Path(temp).unlink(missing_ok=True)
        raise RenderError(f"{path}: cannot write the report: {exc}") from exc


_FACT_AT = 12 + 8 + 18 + 8  # byte offset of the fact chunk's frame count (float files)


def _header(sample_rate: int, bit_depth: int, channels: int, cues: Sequence[Cue]) -> bytes:
    """RIFF header up to and including the data chunk's id and (placeholder) size."""
    block_align = channels * bit_depth // 8
    tag = IEEE_FLOAT if bit_depth == 32 else PCM
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * block_align,
                      block_align, bit_depth)
    parts = []
    if tag == IEEE_FLOAT:  # non-PCM formats carry cbSize and a fact chunk
        parts += [_chunk(b"fmt ", fmt + struct.pack("<H", 0)), _chunk(b"fact", b"\0" * 4)]
    else:
        parts.append(_chunk(b"fmt ", fmt))
    if cues:
        points = b"".join(struct.pack("<II4sIII", ident, cue.position, b"data", 0, 0,
                                      cue.position) for ident, cue in enumerate(cues, 1))
        parts.append(_chunk(b"cue ", struct.pack("<I", len(cues)) + points))
        labels = b"".join(_chunk(b"labl", struct.pack("<I", ident) + cue.label.encode() + b"\0")
                          for ident, cue in enumerate(cues, 1))
        parts.append(_chunk(b"LIST", b"adtl" + labels))
    body = b"WAVE" + b"".join(parts) + b"data" + b"\0" * 4
    return b"RIFF" + b"\0" * 4 + body


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


def _encode(block: np.ndarray, bit_depth: int) -> bytes:
    """Interleave and encode float samples as little-endian PCM or float32."""
    frames = np.ascontiguousarray(block.T)
    if bit_depth == 32:
        return frames.astype("<f4").tobytes()
    scale = float(2 ** (bit_depth - 1))
    ints = np.clip(np.rint(frames * scale), -scale, scale - 1).astype("<i4")
    if bit_depth == 16:
        return ints.astype("<i2").tobytes()
    return ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
