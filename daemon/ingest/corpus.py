"""The shipped training corpus of the category classifier: real recordings, labelled.

``daemon/ingest/data/base_corpus.npz`` holds one feature vector per clip of Debian's sample
packages and the kit synthesiser (see ``data/SOURCES.md``; rebuilt by ``make corpus``), the
category, source and file id of each, and the classifier fitted on all of it. It is a saved
`CategoryClassifier` (so ``CategoryClassifier.load(BASE_CORPUS)`` is the ready classifier, no
training before the first stem) plus three provenance arrays: ``sources``, ``file_ids`` and
``variants`` (0 for the recording itself, 1.. for augmented copies of it). The provenance is
what lets the bench leave one source out and never test on a file it trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import AnalysisError
from daemon.fsutil import atomic_output
from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.features import FEATURE_VERSION

#: The shipped corpus (package data).
BASE_CORPUS = Path(__file__).resolve().parent / "data" / "base_corpus.npz"
_PROVENANCE = ("sources", "file_ids", "variants")


@dataclass(frozen=True)
class Corpus:
    """The labelled table: row ``i`` is clip ``file_ids[i]`` of ``sources[i]``."""

    features: np.ndarray  # (n, d) float32
    categories: np.ndarray  # (n,) str
    sources: np.ndarray  # (n,) str
    file_ids: np.ndarray  # (n,) str
    variants: np.ndarray  # (n,) int8: 0 = the recording, 1.. = augmented copies

    def rows(self, mask: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Features and categories of the rows `mask` selects, ready for `fit`."""
        return self.features[mask], self.categories[mask].tolist()


def load_corpus(path: Path = BASE_CORPUS) -> Corpus:
    """Read the table; `AnalysisError` if it is missing, unreadable or from another
    feature version (then ``make corpus`` rebuilds it)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["feature_version"])
            arrays = {name: data[name] for name in ("features", "categories", *_PROVENANCE)}
    except (OSError, KeyError, ValueError, EOFError) as exc:
        raise AnalysisError(f"{path}: cannot read the training corpus: {exc}") from exc
    if version != FEATURE_VERSION:
        raise AnalysisError(f"{path}: corpus has feature version {version}, this build "
                            f"computes version {FEATURE_VERSION}; run `make corpus`")
    lengths = {len(array) for array in arrays.values()}
    if len(lengths) != 1:
        raise AnalysisError(f"{path}: corpus arrays differ in length: {sorted(lengths)}")
    return Corpus(**arrays)


def write_corpus(path: Path, classifier: CategoryClassifier, *, sources: np.ndarray,
                 file_ids: np.ndarray, variants: np.ndarray) -> None:
    """Save `classifier` (fitted on the whole table) with the provenance of its base rows,
    compressed (it ships in the package), atomically."""
    arrays = classifier.arrays()
    provenance = {"sources": np.asarray(sources, dtype=str),
                  "file_ids": np.asarray(file_ids, dtype=str),
                  "variants": np.asarray(variants, dtype=np.int8)}
    if any(len(array) != len(arrays["categories"]) for array in provenance.values()):
        raise ValueError("provenance needs one entry per base row")
    with atomic_output(Path(path)) as temp, open(temp, "wb") as handle:
        np.savez_compressed(handle, **arrays, **provenance)
