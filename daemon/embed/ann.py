"""A persisted approximate-nearest-neighbour snapshot of one embedding model's vectors.

The index is a usearch HNSW graph (cosine, half-precision vectors). A *snapshot* covers the
model's stems with id ≤ ``through_id`` as they were when it was built; the caller
(`daemon.vectorsearch`) scans the younger *tail* exactly and drops stems deleted or
re-embedded since, so a snapshot is never wrong, only more or less complete.

Layout under `folder` (``library/cache/ann/``), per model: a pointer ``<slug>.json`` and the
index file it names, ``<slug>-<through_id>-<nonce>.usearch``. Correctness needs no lock (the
library may sit on shared storage written by several machines): each writer writes a new
index file under a fresh name, then renames the pointer over the old one, so a reader sees
the old snapshot or the new one, never a mix. The previous index file is kept for a reader
that read the old pointer a moment ago; older ones are deleted. Readers map the file
(`usearch` view) and reload when the pointer's mtime or size changes. ``<slug>.lock`` lets
the processes of one machine build one at a time (`try_builder_lock`), to save the work.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from usearch.index import Index

from daemon.errors import EmbeddingError
from daemon.fsutil import write_text_atomic, write_with

log = logging.getLogger("traum.ann")

FORMAT = 1
#: HNSW parameters, chosen with ``bench/bench_search.py --tune`` on a tuning library of
#: 200k clustered vectors (never the library it reports on): the cheapest graph to build
#: whose recall@10 against the exact scan reached 0.98 there (0.987; margin for larger
#: libraries) with the smallest expansion_search that does. A query stays well under 1 ms.
CONNECTIVITY = 16
EXPANSION_ADD = 64
EXPANSION_SEARCH = 128
#: Half precision halves the file and the page cache it needs; the caller re-scores the
#: candidates with the stored float32 vectors, so only the candidate order is approximate.
SCALAR = "f16"
#: The ingest lane builds while the render lane works: one core each (usearch's node locks
#: spin, so a second thread on a busy machine made builds slower, not faster).
BUILD_THREADS = 1
_KEPT_FILES = 2  # the current index file and the one a slow reader may still be opening

_cache: dict[Path, tuple[tuple[int, int, int], Snapshot]] = {}


@dataclass(frozen=True)
class SnapshotInfo:
    """What the pointer file says about a snapshot.

    `anchors` maps the snapshot's highest stem ids to their content hashes when it was
    built: where such a stem is gone or holds other content, the database may have handed
    its id (and the ids above it) to new stems, whose vectors the snapshot does not know.
    """

    model: str
    dim: int
    through_id: int
    anchors: Mapping[int, str]
    count: int
    file: str
    size: int
    connectivity: int = CONNECTIVITY
    format: int = FORMAT


class Snapshot:
    """A loaded snapshot: its pointer's `info` and the usearch `index` (a view or a copy)."""

    def __init__(self, info: SnapshotInfo, index: Index) -> None:
        self.info = info
        self.index = index

    def __len__(self) -> int:
        return len(self.index)

    def search(self, vector: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """`search_index` of this snapshot's index."""
        return search_index(self.index, vector, count)


def search_index(index: Index, vector: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` stem ids nearest to `vector`, best first, with their approximate cosine
    similarity (int64 ids, float32 scores)."""
    count = min(count, len(index))
    if count <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    matches = index.search(np.asarray(vector, np.float32), count, threads=1)
    return matches.keys.astype(np.int64), (1.0 - matches.distances).astype(np.float32)


def build_index(ids: np.ndarray, vectors: np.ndarray, *, connectivity: int = CONNECTIVITY,
                expansion_add: int = EXPANSION_ADD, expansion_search: int = EXPANSION_SEARCH,
                threads: int = BUILD_THREADS) -> Index:
    """A new in-memory index of `vectors` (``(n, dim)``) keyed by the stem `ids`."""
    vectors = np.atleast_2d(np.asarray(vectors, np.float32))
    index = Index(ndim=vectors.shape[1], metric="cos", dtype=SCALAR,
                  connectivity=connectivity, expansion_add=expansion_add,
                  expansion_search=expansion_search)
    add_vectors(index, ids, vectors, threads=threads)
    return index


def add_vectors(index: Index, ids: np.ndarray, vectors: np.ndarray, *,
                threads: int = BUILD_THREADS) -> None:
    """Add the rows of `vectors` under `ids` to a writable `index`."""
    if len(ids):
        index.add(np.asarray(ids, np.uint64), np.asarray(vectors, np.float32),
                  threads=threads)


def pointer_path(folder: Path, model: str) -> Path:
    """The pointer file of `model`'s snapshot (which may not exist)."""
    return folder / f"{model_slug(model)}.json"


@contextlib.contextmanager
def try_builder_lock(folder: Path, model: str) -> Iterator[bool]:
    """Take the builder's lock of `model`'s snapshot under `folder` (an `fcntl.flock` of
    ``<slug>.lock``) unless another holder has it, without waiting: yield True while it is
    held, False when it is taken. Released when the block ends, an exception too.

    A lock of this machine (flock is not to be trusted on network file systems): the
    cluster uses its server's instead (`daemon.store.cluster.try_server_lock`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{model_slug(model)}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the file releases the lock


def model_slug(model: str) -> str:
    """A file-name-safe, collision-free name for a model name such as ``clap:x.pt``."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", model)[:48]
    return f"{readable}-{hashlib.sha256(model.encode()).hexdigest()[:10]}"


def read_snapshot(folder: Path, model: str, *, writable: bool = False) -> Snapshot | None:
    """The current snapshot of `model`, or None when none was written.

    A read-only snapshot maps the file and is cached until the pointer changes; a
    `writable` one is a private copy that `add_vectors` may extend.

    Raises
    ------
    EmbeddingError
        The pointer or the index file is damaged, missing, or describes another model or
        dimension; the message names the file and the reason.
    """
    pointer = pointer_path(folder, model)
    try:
        stat = pointer.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EmbeddingError(f"{pointer}: vector index unreadable ({exc.strerror})") from exc
    stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
    cached = _cache.get(pointer)
    if not writable and cached is not None and cached[0] == stamp:
        return cached[1]
    snapshot = _load(pointer, model, writable=writable)
    if not writable:
        _cache[pointer] = (stamp, snapshot)
    return snapshot


def write_snapshot(folder: Path, model: str, index: Index, *, through_id: int,
                   anchors: Mapping[int, str]) -> SnapshotInfo:
    """Save `index` as `model`'s snapshot covering stems up to `through_id`; return its info.

    The index file is written under a new name and the pointer renamed over the old one
    (both atomically), then index files older than the previous one are deleted.
    """
    folder.mkdir(parents=True, exist_ok=True)
    slug = model_slug(model)
    name = f"{slug}-{through_id}-{secrets.token_hex(4)}.usearch"
    write_with(folder / name, lambda temp: index.save(str(temp)))
    info = SnapshotInfo(model=model, dim=int(index.ndim), through_id=int(through_id),
                        anchors=dict(anchors), count=len(index), file=name,
                        size=(folder / name).stat().st_size,
                        connectivity=int(index.connectivity))
    fields = {**asdict(info), "anchors": sorted(info.anchors.items())}
    write_text_atomic(pointer_path(folder, model), json.dumps(fields, indent=1))
    _remove_old_files(folder, slug, keep=name)
    return info


def _load(pointer: Path, model: str, *, writable: bool) -> Snapshot:
    try:
        fields = json.loads(pointer.read_text(encoding="utf-8"))
        info = SnapshotInfo(**{**fields, "anchors": {int(stem_id): str(content) for
                                                     stem_id, content in fields["anchors"]}})
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise EmbeddingError(f"{pointer}: vector index pointer unreadable ({exc})") from exc
    if info.format != FORMAT or info.model != model:
        raise EmbeddingError(f"{pointer}: vector index of another model or format "
                             f"({info.model}, format {info.format})")
    if Path(info.file).name != info.file or not info.file.startswith(model_slug(model)):
        raise EmbeddingError(f"{pointer}: vector index pointer names a foreign file "
                             f"({info.file})")
    path = pointer.parent / info.file
    try:
        size = path.stat().st_size
        # A view needs no key table (only `remove` does): building it is most of opening.
        index = Index.restore(str(path), view=not writable, expansion_search=EXPANSION_SEARCH,
                              enable_key_lookups=writable)
    except (OSError, RuntimeError, ValueError) as exc:
        raise EmbeddingError(f"{path}: vector index unusable ({exc})") from exc
    if index is None or size != info.size:
        raise EmbeddingError(f"{path}: vector index unusable (not a usearch index of the "
                             f"size its pointer records)")
    if index.ndim != info.dim or len(index) != info.count:
        raise EmbeddingError(f"{path}: vector index holds {len(index)} vectors of dimension "
                             f"{index.ndim}, its pointer says {info.count} of {info.dim}")
    return Snapshot(info, index)


def _remove_old_files(folder: Path, slug: str, *, keep: str) -> None:
    """Delete index files of `slug` but the newest `_KEPT_FILES` (`keep` always stays)."""
    files = []
    for path in folder.glob(f"{slug}-*.usearch"):
        try:
            files.append((path.stat().st_mtime_ns, path))
        except FileNotFoundError:
            continue  # another writer removed it
    files.sort(reverse=True)
    for _, path in files[_KEPT_FILES:]:
        if path.name != keep:
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
