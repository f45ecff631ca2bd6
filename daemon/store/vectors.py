"""The stems' vectors as arrays, for the vector search (`daemon.vectorsearch`).

Read through a plain cursor: building a peewee row per stem costs more than the query when
a search scans a long tail of vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from peewee import fn

from daemon.errors import StoreError
from daemon.store.models import Stem, database
from daemon.store.queries import in_chunks


def model_vectors(model_name: str, *, after_id: int = 0, before_id: int | None = None,
                  category: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ids (int64) and float32 vectors, one row each, of the stems embedded by `model_name`
    with ``after_id < id < before_id`` (optionally of one category), ordered by id."""
    query = Stem.select(Stem.id, Stem.embedding).where(
        (Stem.id > after_id) & (Stem.embedding_model == model_name))
    if before_id is not None:
        query = query.where(Stem.id < before_id)
    if category:
        query = query.where(Stem.category == category)
    # A plain cursor: building peewee rows costs more than the query for a long tail.
    return _id_vector_rows(database.execute(query.order_by(Stem.id)).fetchall(), model_name)


def _id_vector_rows(rows: Sequence[tuple[int, bytes]],
                    model_name: str) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
    blob = b"".join(bytes(row[1]) for row in rows)
    if len(blob) % (4 * len(rows)):
        raise StoreError(f"vectors of {model_name} differ in length; run traum reanalyse")
    return ids, np.frombuffer(blob, np.float32).reshape(len(rows), -1)


def stem_vectors(ids: Iterable[int], model_name: str, *,
                 category: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`model_vectors` of those of `ids` that are stems still embedded by `model_name` (and
    of `category`): deleted and re-embedded stems are left out."""
    rows = []
    for wanted in in_chunks(sorted({int(i) for i in ids})):
        query = Stem.select(Stem.id, Stem.embedding).where(
            Stem.id.in_(wanted) & (Stem.embedding_model == model_name))
        if category:
            query = query.where(Stem.category == category)
        rows.extend(database.execute(query.order_by(Stem.id)).fetchall())
    return _id_vector_rows(rows, model_name)


def stem_hashes(ids: Iterable[int]) -> dict[int, str]:
    """Content hash of each of `ids` that is a stem."""
    found = {}
    for wanted in in_chunks([int(i) for i in ids]):
        query = Stem.select(Stem.id, Stem.content_hash).where(Stem.id.in_(wanted))
        found.update(database.execute(query).fetchall())
    return found


def first_stem_needing_embedding(model_name: str, *, after_id: int = 0) -> int | None:
    """The lowest id above `after_id` of a stem whose vector is missing or of another model."""
    return (Stem.select(fn.MIN(Stem.id))
            .where((Stem.id > after_id) & (Stem.embedding_model.is_null()
                                           | (Stem.embedding_model != model_name)))
            .scalar())
