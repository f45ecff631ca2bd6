"""The conform cache stays within its size: stale conform versions go first, then the least
recently used; a hit counts as a use."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from daemon.render.conform import CONFORM_VERSION, cache_path, cached, prune_cache

#: Every array the tests cache: 2 × 1000 float32 samples (+ the .npy header).
AUDIO = np.zeros((2, 1000), dtype=np.float32)


def fill(cache: Path, name: str, *, used_at: int) -> Path:
    """Cache AUDIO under the key `name`, last used `used_at` seconds after the epoch."""
    cached(cache, (name,), lambda: AUDIO)
    path = cache_path(cache, (name,))
    os.utime(path, (used_at, used_at))
    return path


def test_names_carry_the_conform_version_and_a_hash(tmp_path):
    first, second = cache_path(tmp_path, ("a", 1)), cache_path(tmp_path, ("a", 2))
    assert first.name.startswith(f"conform-v{CONFORM_VERSION}-") and first.suffix == ".npy"
    assert first != second and first == cache_path(tmp_path, ("a", 1))


def test_prune_removes_stale_versions_then_the_least_recently_used(tmp_path):
    oldest, old, new, newest = (fill(tmp_path, name, used_at=time)
                                for name, time in (("a", 100), ("b", 200), ("c", 300),
                                                   ("d", 400)))
    size = newest.stat().st_size
    stale = tmp_path / f"conform-v{CONFORM_VERSION + 1}-0123456789abcdef0123.npy"
    unversioned = tmp_path / "conform-0123456789abcdef0123.npy"  # named before versions
    for path in (stale, unversioned):
        path.write_bytes(b"x" * size)
        os.utime(path, (900, 900))  # used recently, but no render reads it again
    classifier = tmp_path / "category_classifier.joblib"
    classifier.write_bytes(b"x" * 10 * size)

    pruned = prune_cache(tmp_path, 2 * size)

    assert [(item.path, item.reason) for item in pruned] == [
        (unversioned, "stale version"), (stale, "stale version"),
        (oldest, "least recently used"), (old, "least recently used")]
    assert all(item.size == size for item in pruned)
    assert sorted(tmp_path.iterdir()) == sorted([new, newest, classifier])
    assert prune_cache(tmp_path, 2 * size) == []


def test_a_cache_hit_counts_as_a_use(tmp_path):
    first = fill(tmp_path, "first", used_at=100)
    second = fill(tmp_path, "second", used_at=200)

    def fail() -> np.ndarray:
        raise AssertionError("a cached array was computed again")

    assert np.array_equal(cached(tmp_path, ("first",), fail), AUDIO)
    [pruned] = prune_cache(tmp_path, first.stat().st_size)
    assert pruned.path == second and first.exists()


def test_an_empty_or_missing_cache_prunes_nothing(tmp_path):
    assert prune_cache(tmp_path / "missing", 0) == []
    assert prune_cache(tmp_path, 0) == []
