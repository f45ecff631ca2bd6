"""`VectorIndex`: exact cosine ranking, exclusion, replacement and growth."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.embed.index import VectorIndex
from daemon.errors import EmbeddingError


def unit_rows(count: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_nearest_matches_brute_force_cosine_order():
    vectors = unit_rows(500, 32)
    ids = np.arange(1000, 1500)
    index = VectorIndex(32)
    index.add(ids, vectors)
    query = np.random.default_rng(9).standard_normal(32) * 3.0  # not normalised on purpose
    expected = np.argsort(-(vectors @ (query / np.linalg.norm(query))))[:10]
    result = index.nearest(query, 10)
    assert [stem_id for stem_id, _ in result] == list(ids[expected])
    scores = [score for _, score in result]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= score <= 1.0 for score in scores)


def test_a_stems_own_vector_ranks_itself_first_unless_excluded():
    index = VectorIndex(16)
    index.add(list(range(1, 201)), unit_rows(200, 16, seed=3))
    query = index.vector(42)
    assert index.nearest(query, 1) == [(42, pytest.approx(1.0, abs=1e-5))]
    excluded = index.nearest(query, 5, exclude=[42, 99999])
    assert 42 not in [stem_id for stem_id, _ in excluded] and len(excluded) == 5


def test_k_larger_than_the_index_and_empty_index():
    index = VectorIndex(8)
    assert index.nearest(np.ones(8), 5) == []
    index.add([1, 2], unit_rows(2, 8))
    assert len(index.nearest(np.ones(8), 50)) == 2
    assert index.nearest(np.ones(8), 5, exclude=[1, 2]) == []
    assert index.nearest(np.ones(8), 0) == []


def test_ties_are_broken_by_lower_id():
    index = VectorIndex(4)
    same = np.tile(np.array([1.0, 0, 0, 0], np.float32), (3, 1))
    index.add([30, 10, 20], same)
    assert [stem_id for stem_id, _ in index.nearest(np.array([1.0, 0, 0, 0]), 3)] == [10, 20, 30]


def test_adding_an_existing_id_replaces_its_vector():
    index = VectorIndex(4)
    index.add([1, 2], np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    index.add([1], np.array([[0, 0, 2.0, 0]]))
    assert len(index) == 2
    assert np.allclose(index.vector(1), [0, 0, 1.0, 0])
    assert index.nearest(np.array([0, 0, 1.0, 0]), 1)[0][0] == 1


def test_growing_one_by_one_keeps_every_row():
    vectors = unit_rows(3000, 8, seed=5)
    index = VectorIndex(8)
    for stem_id, vector in enumerate(vectors):
        index.add([stem_id], vector)
    assert len(index) == 3000 and index.matrix.shape == (3000, 8)
    assert np.allclose(index.matrix, vectors, atol=1e-6)
    assert list(index.ids) == list(range(3000))


@pytest.mark.parametrize("bad", [np.zeros(8), np.full(8, np.nan), np.ones(7), np.ones((2, 8))])
def test_bad_vectors_are_rejected(bad):
    index = VectorIndex(8)
    with pytest.raises(EmbeddingError):
        index.add([1], bad)


def test_unknown_stem_and_bad_dimension_raise_embedding_error():
    index = VectorIndex(8, model_name="features-v1")
    with pytest.raises(EmbeddingError, match="stem 5 has no features-v1 vector"):
        index.vector(5)
    with pytest.raises(EmbeddingError):
        VectorIndex(0)
    with pytest.raises(EmbeddingError):
        index.nearest(np.ones(4), 3)
