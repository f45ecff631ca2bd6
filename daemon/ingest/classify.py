"""Category and kind: name tokens first (rules/categories.toml), then the audio classifier.

`CategoryClassifier` is a standardised multinomial logistic regression on
`features.feature_vector`: of the models tried (extra trees, random forest, gradient
boosting, k-NN; bench/accuracy.py) it generalised best from synthesised to real samples
and predicts in well under a millisecond.
Persistence format (``.npz``, loaded with ``allow_pickle=False``): the *training set*
(``features`` float32 ``(n, d)``, ``categories`` unicode ``(n,)``) plus ``seed`` and
``feature_version``. Loading refits the trees (about a second), so a cache file can never
execute code and survives scikit-learn upgrades; a file from another feature version is
refused. `bootstrap_classifier` builds the training set from `daemon.synth` kits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import AnalysisError
from daemon.ingest.features import FEATURE_VERSION
from daemon.ingest.rules import (
    AnalysisRules,
    CategoryRule,
    longest_match,
    name_parts,
    prefix_match,
)

#: File name of the cached classifier under ``library/cache``.
CLASSIFIER_FILE = f"category_classifier_v{FEATURE_VERSION}.npz"
_FILE_CONFIDENCE, _FOLDER_CONFIDENCE = 0.95, 0.8  # a folder name is a weaker hint
_GLUED_FACTOR = 0.8  # a word found glued to others ("bassloops") is a weaker hint still
_VARIANTS = 3  # augmented copies per corpus sample (pitch/speed, tilt, saturation)


@dataclass(frozen=True)
class CategoryGuess:
    category: str
    confidence: float
    source: str  # "filename" | "audio"


def category_from_name(name: str, rules: AnalysisRules) -> CategoryGuess | None:
    """Category named by the file name, else by the innermost folder naming one.

    Within one name part the longest phrase wins, then the higher priority; a part
    without any phrase may still start with a category word ("bassloops").
    """
    for depth, tokens in enumerate(name_parts(name)):
        confidence = _FILE_CONFIDENCE if depth == 0 else _FOLDER_CONFIDENCE
        scored = [(longest_match(tokens, rule.phrases), rule.priority, rule.name)
                  for rule in rules.categories.values()]
        size, _, best = max(scored)
        if size:
            return CategoryGuess(best, confidence, "filename")
        glued = [(rule.priority, rule.name) for rule in rules.categories.values()
                 if prefix_match(tokens, rule.phrases)]
        if glued:
            return CategoryGuess(max(glued)[1], confidence * _GLUED_FACTOR, "filename")
    return None


def kind_from_name(name: str, rules: AnalysisRules) -> str | None:
    """"loop" or "oneshot" when the file name (else a folder) says so."""
    for tokens in name_parts(name):
        sizes = {kind: longest_match(tokens, phrases)
                 for kind, phrases in rules.kind_phrases.items()}
        kind, size = max(sizes.items(), key=lambda item: item[1])
        if size:
            return kind
    return None


def choose_kind(*, named: str | None, rule: CategoryRule, pulse_fits_length: bool,
                sustained: bool, duration: float) -> str:
    """Loop or one-shot: the name, else a pulse whose tempo fits whole bars, else the
    category's default, else sustained energy to the end (loops do not decay away).

    A loop must last at least one bar at the fastest loop tempo (1.2 s at 200 BPM).
    """
    if named:
        return named
    if duration < 1.2:
        return "oneshot"
    if pulse_fits_length or rule.kind == "loop":
        return "loop"
    if rule.kind == "oneshot":
        return "oneshot"
    return "loop" if sustained else "oneshot"


class CategoryClassifier:
    """Audio-only category classifier (scikit-learn logistic regression on the vector)."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._features: np.ndarray | None = None
        self._categories: np.ndarray | None = None
        self._model = None

    def fit(self, features: np.ndarray, categories: list[str]) -> None:
        """Train on ``(n, d)`` `features` labelled with `categories`."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        features = np.asarray(features, dtype=np.float32)
        labels = np.asarray(categories, dtype=str)
        if features.ndim != 2 or len(features) != len(labels) or len(set(labels)) < 2:
            raise ValueError("need (n, d) features, n labels and at least two categories")
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        model.fit(features, labels)
        self._features, self._categories, self._model = features, labels, model

    def predict(self, features: np.ndarray) -> tuple[str, float]:
        """Most probable category of one feature vector, and its probability."""
        if self._model is None:
            raise AnalysisError("classifier: predict before fit")
        vector = np.asarray(features, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self._features.shape[1] or not np.all(np.isfinite(vector)):
            raise AnalysisError(f"classifier: bad feature vector of shape {vector.shape}")
        probabilities = self._model.predict_proba(vector)[0]
        best = int(np.argmax(probabilities))
        return str(self._model.classes_[best]), float(probabilities[best])

    def save(self, path: Path) -> None:
        """Write the training set atomically (see the module docstring for the format)."""
        if self._features is None:
            raise ValueError("nothing to save: the classifier is not fitted")
        path = Path(path)
        partial = path.with_name(f".{path.name}.part")
        with open(partial, "wb") as handle:
            np.savez_compressed(handle, features=self._features, categories=self._categories,
                                seed=np.int64(self.seed),
                                feature_version=np.int64(FEATURE_VERSION))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> CategoryClassifier:
        """Read a saved training set and refit; `AnalysisError` if unreadable or stale."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                version = int(data["feature_version"])
                features, categories = data["features"], data["categories"].tolist()
                seed = int(data["seed"])
        except (OSError, KeyError, ValueError) as exc:
            raise AnalysisError(f"{path}: cannot read the classifier: {exc}") from exc
        if version != FEATURE_VERSION:
            raise AnalysisError(f"{path}: classifier was trained on feature version {version},"
                                f" this build computes version {FEATURE_VERSION}; delete it")
        classifier = cls(seed=seed)
        classifier.fit(features, categories)
        return classifier


#: Kit seeds of the bootstrap corpus start here, far from the small seeds tests and
#: benchmarks use for held-out kits.
CORPUS_SEED_BASE = 10_000
_CORPUS_TEMPI = (120.0, 124.0, 128.0, 132.0, 136.0, 140.0, 145.0, 150.0, 174.0)
_CORPUS_KEYS = ("A minor", "F minor", "C# minor", "D minor", "G minor", "E minor",
                "C major", "F# minor", "A# minor", "G major", "B minor")
_CORPUS_BARS = (1, 2, 4)


def bootstrap_classifier(*, seed: int = 0, kits: int = 18) -> CategoryClassifier:
    """Train a classifier on `kits` anonymous `daemon.synth` kits plus augmented copies.

    Tempi, keys and loop lengths vary per kit; kit seeds are ``CORPUS_SEED_BASE +
    seed * 1000 + index``, so different `seed` values give disjoint corpora. Synthesised
    at 22.05 kHz (the analysis rate) to halve the synthesis time. Takes ~15 s; callers
    cache the result with `CategoryClassifier.save`.
    """
    features, categories = training_set(seed=seed, kits=kits)
    classifier = CategoryClassifier(seed=seed)
    classifier.fit(features, categories)
    return classifier


def training_set(*, seed: int, kits: int) -> tuple[np.ndarray, list[str]]:
    """Feature vectors and categories of every sample of the bootstrap corpus."""
    from daemon.ingest.features import ANALYSIS_RATE, prepare
    from daemon.synth import synthesize_kit  # the corpus generator, needed only here

    rng = np.random.default_rng(seed)
    vectors, categories = [], []
    for index in range(kits):
        samples = synthesize_kit(
            bpm=_CORPUS_TEMPI[index % len(_CORPUS_TEMPI)],
            key=_CORPUS_KEYS[index % len(_CORPUS_KEYS)],
            seed=CORPUS_SEED_BASE + seed * 1000 + index, names="anonymous",
            sample_rate=ANALYSIS_RATE, bars=_CORPUS_BARS[index % len(_CORPUS_BARS)])
        for sample in samples:
            for audio in (sample.audio, *augment(sample.audio, sample.sample_rate, rng=rng)):
                vectors.append(prepare(audio=audio, sample_rate=sample.sample_rate).vector)
                categories.append(sample.category)
    return np.stack(vectors), categories


def augment(audio: np.ndarray, sample_rate: int, *, rng: np.random.Generator
            ) -> list[np.ndarray]:
    """`_VARIANTS` copies of ``(channels, n)`` `audio` that real packs differ by.

    Each is played 0.7-1.4x faster (pitch and length together, like a tape), then
    tilted darker (one-pole low-pass) or brighter (first difference), and sometimes
    saturated. One synthesiser recipe per category is a narrow corpus; this widens it.
    """
    import scipy.signal
    import soxr

    variants = []
    for _ in range(_VARIANTS):
        speed = rng.uniform(0.7, 1.4)
        copy = soxr.resample(audio.T, sample_rate, int(sample_rate / speed)).T
        pole = rng.uniform(0.1, 0.6)
        if rng.random() < 0.5:
            copy = scipy.signal.lfilter([1 - pole], [1, -pole], copy, axis=1)
        else:
            copy = scipy.signal.lfilter([1, -pole], [1], copy, axis=1)
        if rng.random() < 0.3:  # 30 %: tape/console saturation at 2-6x drive
            copy = np.tanh(copy * rng.uniform(2.0, 6.0))
        variants.append(np.ascontiguousarray(copy, dtype=np.float32))
    return variants
