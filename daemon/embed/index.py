"""An in-memory cosine index over stem vectors: one float32 matrix, exact search.

Exact search is one matrix-vector product plus an `np.argpartition`: a few milliseconds up
to tens of thousands of stems (see ``bench/bench_search.py``). `daemon.vectorsearch` uses it
for a library below its ANN threshold and for the tail younger than the ANN snapshot
(`daemon.embed.ann`). All vectors in one index come from one embedding model;
the caller picks them (`daemon.store.vectors.model_vectors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from daemon.errors import EmbeddingError

_INITIAL_CAPACITY = 1024
_EPS = 1e-12


class VectorIndex:
    """Stem ids and their unit vectors; `nearest` ranks by cosine similarity.

    Adding an id that is already present replaces its vector (re-embedding). Rows are kept
    in a buffer that doubles when full, so adding stems one at a time stays cheap.
    """

    def __init__(self, dim: int | None = None, *, model_name: str | None = None) -> None:
        """`dim` None: taken from the first vector added."""
        if dim is not None and dim <= 0:
            raise EmbeddingError(f"vector index needs a positive dimension (got {dim})")
        self.dim = dim
        self.model_name = model_name
        self._ids = np.zeros(_INITIAL_CAPACITY, dtype=np.int64)
        self._matrix = np.zeros((_INITIAL_CAPACITY, dim or 0), dtype=np.float32)
        self._rows: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, stem_id: object) -> bool:
        return stem_id in self._rows

    @property
    def ids(self) -> np.ndarray:
        """The indexed stem ids, in row order (a view; do not modify)."""
        return self._ids[: len(self)]

    @property
    def matrix(self) -> np.ndarray:
        """The ``(len, dim)`` float32 unit vectors, in row order (a view; do not modify)."""
        return self._matrix[: len(self)]

    def add(self, ids: Sequence[int], vectors: np.ndarray) -> None:
        """Add or replace the vectors of `ids`; vectors are re-normalised to unit length.

        Raises
        ------
        EmbeddingError
            Shapes disagree, a vector has the wrong dimension, is zero or not finite.
        """
        block = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if self.dim is None and block.ndim == 2:
            self.dim = block.shape[1]
            self._matrix = np.zeros((self._ids.size, self.dim), dtype=np.float32)
        block = unit_rows(block, self.dim)
        if block.shape[0] != len(ids):
            raise EmbeddingError(f"{len(ids)} ids but {block.shape[0]} vectors")
        self._reserve(len(self._rows) + len(ids))
        known = self._rows
        rows = [known.setdefault(stem_id, len(known)) for stem_id in
                np.asarray(ids, dtype=np.int64).tolist()]
        self._ids[rows] = ids
        self._matrix[rows] = block  # a repeated id keeps its last vector

    def vector(self, stem_id: int) -> np.ndarray:
        """The stored unit vector of `stem_id` (for "more like this stem")."""
        if stem_id not in self._rows:
            model = f" {self.model_name}" if self.model_name else ""
            raise EmbeddingError(f"stem {stem_id} has no{model} vector yet; is it still being "
                                 "embedded?")
        return self._matrix[self._rows[stem_id]].copy()

    def nearest(self, vector: np.ndarray, k: int,
                exclude: Iterable[int] = ()) -> list[tuple[int, float]]:
        """The `k` stems most similar to `vector`, best first, as ``(id, cosine)``.

        `vector` need not be normalised. Ids in `exclude` (e.g. the query stem itself) are
        never returned. Ties are broken by the lower id so results are deterministic.
        """
        if self.dim is None:  # nothing was ever added
            return []
        query = unit_rows(np.atleast_2d(np.asarray(vector, dtype=np.float32)), self.dim)[0]
        scores = self.matrix @ query
        for stem_id in exclude:
            row = self._rows.get(int(stem_id))
            if row is not None:
                scores[row] = -np.inf
        count = min(k, int(np.isfinite(scores).sum()))
        if count <= 0:
            return []
        top = np.argpartition(-scores, count - 1)[:count]
        order = np.lexsort((self._ids[top], -scores[top]))
        return [(int(self._ids[row]), float(scores[row])) for row in top[order]]

    def _reserve(self, size: int) -> None:
        capacity = self._ids.size
        if size <= capacity:
            return
        while capacity < size:
            capacity *= 2
        self._ids = np.resize(self._ids, capacity)
        grown = np.zeros((capacity, self.dim), dtype=np.float32)
        grown[: len(self._rows)] = self.matrix
        self._matrix = grown


def unit_rows(block: np.ndarray, dim: int | None) -> np.ndarray:
    """Validate ``(n, dim)`` rows and scale each to unit L2 norm."""
    if block.ndim != 2 or block.shape[1] != dim:
        raise EmbeddingError(f"expected vectors of dimension {dim}, got shape {block.shape}")
    if not np.all(np.isfinite(block)):
        raise EmbeddingError("vector contains NaN or infinite values")
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    if np.any(norms < _EPS):
        raise EmbeddingError("cannot index a zero vector")
    return block / norms
