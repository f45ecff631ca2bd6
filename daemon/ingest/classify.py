"""Category and kind: name tokens first (rules/categories.toml), then the audio classifier.

`CategoryClassifier` is a standardised multinomial logistic regression on
`features.feature_vector`. It starts from a corpus of synthesised kits
(`bootstrap_classifier`) and learns the user's own sounds: `with_examples` adds the
vectors of stems whose category their names gave, weighted so that real recordings
decide wherever they exist. Of the models tried on lmms (bench/accuracy.py: extra trees,
random forest, gradient boosting, k-NN, an RBF SVM, Nystroem-kernel logistic regression)
only the RBF SVM scored higher, by 1.5 points (within the split-to-split noise), and it
gives no probabilities without an inner cross-validation that categories with one or two
named stems cannot feed. This model predicts in well under a millisecond.
Persistence format (``.npz``, loaded with ``allow_pickle=False``): the base training set
(``features`` float32 ``(n, d)``, ``categories`` unicode ``(n,)``), the added examples
(``example_features`` ``(m, d)``, ``example_categories`` ``(m,)``), ``seed`` and
``feature_version``. Loading refits (about 0.1 s), so a cache file can never execute
code and survives scikit-learn upgrades; a file from another feature version is refused."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.errors import AnalysisError
from daemon.ingest.features import FEATURE_VERSION
from daemon.ingest.rules import (
    TAXONOMY,
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
#: Categories below this priority name an instrument rather than a role (rules/categories.toml).
INSTRUMENT_PRIORITY = 50
#: A named real stem weighs as much as this many synthesised vectors, so a handful of them
#: outweigh the 72-216 synthesised vectors of their category: real recordings decide where
#: they exist. Cross-validated on lmms (bench) weights 10-100 score alike, 1 is 3 points worse.
EXAMPLE_WEIGHT = 30.0
_REGULARISATION = 0.3  # inverse strength C; 0.1-1 score alike, 10 is 2 points worse on lmms
_SAVED_ARRAYS = ("features", "categories", "example_features", "example_categories")
_MAX_EXAMPLES = 300  # newest named stems kept per category: bounds the refit on load


@dataclass(frozen=True)
class CategoryGuess:
    category: str
    confidence: float
    source: str  # "filename" | "audio"


def category_from_name(name: str, rules: AnalysisRules) -> CategoryGuess | None:
    """Category named by the file name, else by the innermost folder naming one.

    Within one name part the longest phrase wins, then the higher priority; a part
    without any phrase may still start with a category word ("bassloops"). A word of an
    instrument category (priority below `INSTRUMENT_PRIORITY`: "synth", "piano") says how
    a sound is made, not its role in a track, so a folder naming a role wins over it
    ("Basses/Synth Acid.wav" is a bass, "Leads/Synth 03.wav" a lead).
    """
    guesses = [guess for depth, tokens in enumerate(name_parts(name))
               if (guess := _part_guess(tokens, rules, depth=depth))]
    roles = [guess for guess in guesses
             if rules.categories[guess.category].priority >= INSTRUMENT_PRIORITY]
    return (roles or guesses or [None])[0]


def _part_guess(tokens: list[str], rules: AnalysisRules, *, depth: int
                ) -> CategoryGuess | None:
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
    """Audio-only category classifier: logistic regression on the standardised feature
    vector, trained on a base set (the synthesised corpus) plus the user's own
    named stems (`with_examples`), which weigh `EXAMPLE_WEIGHT` times as much."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._base: tuple[np.ndarray, np.ndarray] | None = None
        self._examples: tuple[np.ndarray, np.ndarray] | None = None
        self._model = None

    @property
    def feature_count(self) -> int:
        """Length of the feature vectors this classifier takes (0 before `fit`)."""
        return 0 if self._base is None else int(self._base[0].shape[1])

    @property
    def example_count(self) -> int:
        """How many of the user's named stems the classifier has learnt from."""
        return 0 if self._examples is None else len(self._examples[1])

    def fit(self, features: np.ndarray, categories: list[str]) -> None:
        """Train on the base set: ``(n, d)`` `features` labelled with `categories`.

        Forgets examples added before. Raises `ValueError` on mismatched shapes, fewer
        than two categories or a category outside the taxonomy.
        """
        base = _labelled(features, categories)
        if len(set(base[1])) < 2:
            raise ValueError("need at least two categories to train a classifier")
        self._train(base, _labelled(np.empty((0, base[0].shape[1])), []))

    def with_examples(self, features: np.ndarray, categories: list[str]
                      ) -> CategoryClassifier:
        """A new classifier trained on this one's base set and examples plus these.

        `features` ``(m, d)`` are vectors of real stems whose `categories` came from their
        names. The same vector given again keeps only its latest category, and each
        category keeps its `_MAX_EXAMPLES` most recent examples. This classifier is unchanged.
        """
        if self._base is None:
            raise AnalysisError("classifier: with_examples before fit")
        added = _labelled(features, categories, width=self._base[0].shape[1])
        merged = _recent_unique(np.concatenate([self._examples[0], added[0]]),
                                np.concatenate([self._examples[1], added[1]]))
        learnt = CategoryClassifier(seed=self.seed)
        learnt._train(self._base, merged)
        return learnt

    def _train(self, base: tuple[np.ndarray, np.ndarray],
               examples: tuple[np.ndarray, np.ndarray]) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        weights = np.concatenate([np.ones(len(base[1])),
                                  np.full(len(examples[1]), EXAMPLE_WEIGHT)])
        model = make_pipeline(StandardScaler(), LogisticRegression(C=_REGULARISATION,
                                                                   max_iter=3000))
        # One BLAS thread: alone the fit takes 0.1 s; BLAS threads contending for cores
        # that the ingest pool keeps busy stretched it to 1-7 s (measured on 2 cores).
        with threadpool_limits(1):
            model.fit(np.concatenate([base[0], examples[0]]),
                      np.concatenate([base[1], examples[1]]),
                      logisticregression__sample_weight=weights)
        self._base, self._examples, self._model = base, examples, model

    def predict(self, features: np.ndarray) -> tuple[str, float]:
        """Most probable category of one feature vector, and its probability."""
        if self._model is None:
            raise AnalysisError("classifier: predict before fit")
        vector = np.asarray(features, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self._base[0].shape[1] or not np.all(np.isfinite(vector)):
            raise AnalysisError(f"classifier: bad feature vector of shape {vector.shape}")
        probabilities = self._model.predict_proba(vector)[0]
        best = int(np.argmax(probabilities))
        return str(self._model.classes_[best]), float(probabilities[best])

    def save(self, path: Path) -> None:
        """Write base set and examples atomically (format: see the module docstring)."""
        if self._model is None:
            raise ValueError("nothing to save: the classifier is not fitted")
        path = Path(path)
        partial = path.with_name(f".{path.name}.part")
        with open(partial, "wb") as handle:
            np.savez_compressed(handle, features=self._base[0], categories=self._base[1],
                                example_features=self._examples[0],
                                example_categories=self._examples[1],
                                seed=np.int64(self.seed),
                                feature_version=np.int64(FEATURE_VERSION))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> CategoryClassifier:
        """Read a saved classifier and refit; `AnalysisError` if unreadable or stale."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                version = int(data["feature_version"])
                arrays = {name: data[name] for name in _SAVED_ARRAYS
                          } if version == FEATURE_VERSION else {}
                seed = int(data["seed"])
        except (OSError, KeyError, ValueError) as exc:
            raise AnalysisError(f"{path}: cannot read the classifier: {exc}") from exc
        if version != FEATURE_VERSION:
            raise AnalysisError(f"{path}: classifier was trained on feature version {version},"
                                f" this build computes version {FEATURE_VERSION}; delete it")
        classifier = cls(seed=seed)
        try:
            classifier._train(_labelled(arrays["features"], arrays["categories"]),
                              _labelled(arrays["example_features"], arrays["example_categories"],
                                        width=arrays["features"].shape[-1]))
        except ValueError as exc:
            raise AnalysisError(f"{path}: cannot read the classifier: {exc}") from exc
        return classifier


def _labelled(features: np.ndarray, categories, *, width: int | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """``(n, d)`` finite float32 vectors and ``(n,)`` taxonomy categories, checked."""
    vectors = np.asarray(features, dtype=np.float32)
    labels = np.asarray(categories, dtype=str).reshape(-1)
    if vectors.ndim != 2 or len(vectors) != len(labels):
        raise ValueError(f"need (n, d) features and n categories, got {vectors.shape} and "
                         f"{labels.shape}")
    if width is not None and vectors.shape[1] != width:
        raise ValueError(f"features need {width} columns, got {vectors.shape[1]}")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("features must be finite")
    unknown = sorted(set(labels) - set(TAXONOMY))
    if unknown:
        raise ValueError(f"categories outside the taxonomy: {', '.join(unknown)}")
    return vectors, labels


def _recent_unique(vectors: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep the last occurrence of each vector, then each category's newest examples."""
    _, last_first = np.unique(vectors[::-1], axis=0, return_index=True)
    keep = np.sort(len(vectors) - 1 - last_first)
    keep = np.concatenate([keep[labels[keep] == name][-_MAX_EXAMPLES:]
                           for name in np.unique(labels[keep])] or [keep])
    keep.sort()
    return vectors[keep], labels[keep]


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
