"""Nearest stems by vector at any library size: a persisted ANN snapshot plus an exact tail.

Vectors of different embedding models are never compared: everything here is per model.
Below `ANN_MIN_STEMS` vectors of a model no index is written and a search is an exact scan
of every stored vector of that model. Above it, `refresh_vector_index` (run by the engine
after a kit's ingest, after re-embedding and when the daemon starts) keeps a usearch
snapshot under ``library/cache/ann/`` (`daemon.embed.ann`) covering the model's stems up to
some id, and `nearest_stems` merges

1. the snapshot's candidates (over-fetched), kept only if they are still stems of that
   model (and category) and re-scored with their stored float32 vectors: stems deleted or
   re-embedded since the snapshot are never returned;
2. an exact scan of the *tail*: the model's stems above the highest snapshot id that is
   still intact.

Searching takes no lock, across processes or machines: a snapshot is immutable and only
says "these ids had these vectors"; the database says which still do, and with which vector
(a candidate is scored with the vector stored now). "Intact" guards against
SQLite handing the ids of deleted top stems to new ones: the pointer records the content
hashes of the snapshot's highest ids (its anchors); ids above the highest anchor that still
has its content are treated as tail, never trusted from the snapshot. Refreshing takes a
lock without waiting for it (`lock_refreshes`), only so that one process builds at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from daemon.config import Paths
from daemon.embed import ann
from daemon.embed.index import VectorIndex, unit_rows
from daemon.errors import EmbeddingError
from daemon.store import queries
from daemon.store import vectors as stored
from daemon.store.cluster import library_on_server, try_server_lock
from daemon.store.records import StemRecord

log = logging.getLogger("traum.vectorsearch")

#: Below this many vectors of a model no index is written: the exact scan, which reads every
#: vector of the model from the database for each search, stays within a few milliseconds
#: (``bench/bench_search.py --like-db``; reading the vectors costs more than scoring them).
ANN_MIN_STEMS = 5_000
#: A refresh adds the tail to the snapshot once it is this long, for the same reason.
REFRESH_TAIL = 2_000
ANCHORS = 64  # highest snapshot ids whose content hash the pointer records
OVERFETCH = 2  # snapshot candidates asked for per wanted result, before filtering
MAX_FETCH = 4_096  # beyond this, a category too rare to show up is scanned exactly


def ann_folder(paths: Paths) -> Path:
    return paths.cache / "ann"


def nearest_stems(paths: Paths, vector: np.ndarray, model: str, k: int, *,
                  exclude: Collection[int] = (), category: str | None = None
                  ) -> list[tuple[StemRecord, float]]:
    """The `k` stems embedded by `model` whose vectors are closest (cosine) to `vector`,
    best first (ties: lower id first), optionally of one `category`, never those in
    `exclude`.

    Results equal the exact scan but for the snapshot's approximation (recall@10 ≥ 0.95,
    measured in ``bench/bench_search.py``). A damaged or stale snapshot is logged and the
    search falls back to the exact scan.
    """
    query = np.asarray(vector, np.float32).ravel()
    query = unit_rows(query[None, :], query.size)[0]
    snapshot, intact = _usable_snapshot(paths, model)
    scores: dict[int, float] = {}
    if snapshot is not None:
        scores.update(_snapshot_scores(snapshot, intact, query, model, k, exclude, category))
    tail_ids, tail_vectors = stored.model_vectors(model, after_id=intact, category=category)
    scores.update(_top(tail_ids, tail_vectors, query, k, exclude))
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    records = queries.stems_by_ids(paths.library, [stem_id for stem_id, _ in best])
    return [(records[stem_id], score) for stem_id, score in best if stem_id in records]


def refresh_vector_index(paths: Paths, model: str, *, min_stems: int = ANN_MIN_STEMS,
                         refresh_tail: int = REFRESH_TAIL) -> int:
    """Bring `model`'s snapshot up to date when its tail has grown to `refresh_tail` stems
    (or build it once the model has `min_stems` vectors); return how many vectors were
    added (0: nothing to do).

    Only stems below the first one still waiting for a vector of `model` are added, so a
    snapshot never skips an id that re-embedding fills in later. A damaged or foreign
    index is logged and rebuilt. One refresh of a model runs at a time, across threads,
    processes and machines (`lock_refreshes`): while another runs, this returns 0 at once
    and never waits, so an ingest is never held up; the next refresh catches up with what
    that one left out.
    """
    if _due(paths, model, min_stems=min_stems, refresh_tail=refresh_tail) is None:
        return 0  # the common case after a kit: no lock taken, nothing written
    with lock_refreshes(paths, model) as held:
        if not held:
            log.debug("vector index of %s: another process is refreshing it", model)
            return 0
        # Again under the lock: the refresh that held it before may have done the work.
        due = _due(paths, model, min_stems=min_stems, refresh_tail=refresh_tail)
        return 0 if due is None else _refresh(paths, model, *due)


def lock_refreshes(paths: Paths, model: str) -> AbstractContextManager[bool]:
    """The lock that lets one refresh of `model`'s snapshot run at a time, taken without
    waiting: it yields True while held here, False when another holder has it. The
    cluster's machines share it through the library's server (an advisory lock), one
    machine through a lock file beside the snapshot."""
    if library_on_server():
        return try_server_lock(f"traum-ann:{model}")
    return ann.try_builder_lock(ann_folder(paths), model)


def _due(paths: Paths, model: str, *, min_stems: int, refresh_tail: int
         ) -> tuple[ann.Snapshot | None, int] | None:
    """The usable snapshot and its intact id when a refresh has work to do (see
    `refresh_vector_index`); None when it has not."""
    snapshot, intact = _usable_snapshot(paths, model)
    tail = stored.model_vectors(model, after_id=intact)[0]
    if snapshot is None and len(tail) < min_stems:
        return None
    if snapshot is not None and len(tail) < refresh_tail and intact == snapshot.info.through_id:
        return None
    return snapshot, intact


def _refresh(paths: Paths, model: str, snapshot: ann.Snapshot | None, intact: int) -> int:
    """`refresh_vector_index` under the lock, once `_due` found work."""
    folder = ann_folder(paths)
    index = _extendable(folder, model, snapshot, intact)
    start = 0 if index is None else intact
    waiting = stored.first_stem_needing_embedding(model, after_id=start)
    ids, vectors = stored.model_vectors(model, after_id=start, before_id=waiting)
    if index is None:
        if not len(ids):
            return 0
        index = ann.build_index(ids, vectors)
        kept: list[int] = []
    else:
        kept = [stem_id for stem_id in snapshot.info.anchors if stem_id <= intact]
        ann.add_vectors(index, ids, vectors)
    top = sorted({*kept, *ids[-ANCHORS:].tolist()})[-ANCHORS:]
    hashes = stored.stem_hashes(top)
    ann.write_snapshot(folder, model, index, through_id=top[-1],
                       anchors={stem_id: hashes[stem_id] for stem_id in top
                                if stem_id in hashes})
    log.info("vector index of %s: %d vectors added, %d in all", model, len(ids), len(index))
    return len(ids)


def _usable_snapshot(paths: Paths, model: str) -> tuple[ann.Snapshot | None, int]:
    """The snapshot (None: none, or unusable, logged) and the highest id it may answer for:
    its highest anchor whose stem still has the content it had (0 without a snapshot)."""
    try:
        snapshot = ann.read_snapshot(ann_folder(paths), model)
    except EmbeddingError as exc:
        log.warning("%s; exact search until the next refresh rebuilds it", exc)
        return None, 0
    if snapshot is None:
        return None, 0
    hashes = stored.stem_hashes(snapshot.info.anchors)
    intact = [stem_id for stem_id, content in snapshot.info.anchors.items()
              if hashes.get(stem_id) == content]
    if not intact:
        log.warning("vector index of %s: its newest stems are all gone or replaced; exact "
                    "search until the next refresh rebuilds it", model)
        return None, 0
    return snapshot, max(intact)


def _extendable(folder: Path, model: str, snapshot: ann.Snapshot | None,
                intact: int) -> ann.Index | None:
    """A writable copy of the snapshot's index without the ids above `intact`, or None
    when there is no usable snapshot to extend (build anew)."""
    if snapshot is None:
        return None
    try:
        writable = ann.read_snapshot(folder, model, writable=True)
    except EmbeddingError as exc:  # replaced by a damaged file since it was read
        log.warning("%s; rebuilding it", exc)
        return None
    if writable is None or writable.info.through_id != snapshot.info.through_id:
        return None  # another writer replaced it meanwhile: start from the database
    stale = [stem_id for stem_id in snapshot.info.anchors if stem_id > intact]
    if stale:
        writable.index.remove(np.asarray(stale, np.uint64))
    return writable.index


def _snapshot_scores(snapshot: ann.Snapshot, intact: int, query: np.ndarray, model: str,
                     k: int, exclude: Collection[int], category: str | None
                     ) -> dict[int, float]:
    """Exact scores of the snapshot's best live candidates (ids ≤ `intact`): fetch more
    until `k` survive filtering, or scan a category too rare to surface exactly."""
    fetch = (k + len(exclude)) * OVERFETCH
    while True:
        found, _ = snapshot.search(query, fetch)
        ids, vectors = stored.stem_vectors(found[found <= intact], model, category=category)
        top = _top(ids, vectors, query, k, exclude)
        if len(top) >= k or fetch >= len(snapshot):
            return top
        if fetch >= MAX_FETCH:
            ids, vectors = stored.model_vectors(model, before_id=intact + 1,
                                                 category=category)
            return _top(ids, vectors, query, k, exclude)
        fetch *= 4


def _top(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int,
         exclude: Collection[int]) -> dict[int, float]:
    """The `k` best of `ids` by cosine with `query` (exact), as id → score."""
    if not len(ids):
        return {}
    index = VectorIndex(vectors.shape[1])
    index.add(ids, vectors)
    return dict(index.nearest(query, k, exclude=exclude))
