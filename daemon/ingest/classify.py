"""Category and kind: name tokens first (rules/categories.toml), then the audio classifier.

`CategoryClassifier` is a standardised multinomial logistic regression on
`features.feature_vector`. The package ships one fitted on a corpus of real recordings
(`daemon.ingest.corpus`, rebuilt by ``make corpus``), so a fresh library classifies its first
stem with no training; it then learns the user's own sounds: `with_examples` adds the
vectors of stems whose category their names gave, weighted so that they decide wherever
they exist. On that corpus, leaving one source out, extra trees, gradient boosting, an RBF
SVM and an MLP all scored within two points of it (measured when the corpus was built); it
predicts in microseconds, refits from its own coefficients in a tenth of a second, and
saves as plain arrays.
Persistence format (``.npz``, loaded with ``allow_pickle=False``): the base training set
(``features`` float32 ``(n, d)``, ``categories`` unicode ``(n,)``), the added examples
(``example_features`` ``(m, d)``, ``example_categories`` ``(m,)``), ``feature_version`` and
the fitted `LinearModel` (``model_classes``, ``model_mean``, ``model_scale``,
``model_coef``, ``model_intercept``). Loading refits nothing and runs no code, so a cache
file survives scikit-learn upgrades; a file from another feature version is refused."""

from __future__ import annotations

import importlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.categories import CategoryRule
from daemon.errors import AnalysisError
from daemon.fsutil import atomic_output
from daemon.ingest.features import FEATURE_VERSION
from daemon.ingest.rules import AnalysisRules, longest_match, name_parts, prefix_match
from daemon.taxonomy import CATEGORIES

#: File name of the cached classifier under ``library/cache``.
CLASSIFIER_FILE = f"category_classifier_v{FEATURE_VERSION}.npz"
_FILE_CONFIDENCE, _FOLDER_CONFIDENCE = 0.95, 0.8  # a folder name is a weaker hint
_GLUED_FACTOR = 0.8  # a word found glued to others ("bassloops") is a weaker hint still
#: A named stem weighs as much as this many corpus rows, so a handful of them decide for
#: sounds like theirs (six named toms turn the next toms into "perc"), though not against
#: dozens of corpus recordings of the very same sound. lmms named-stem 5-fold (bench): 30
#: and 100 score 0.656, 300 0.662.
EXAMPLE_WEIGHT = 30.0
#: Inverse L2 strength C. Leave-one-source-out on the corpus 0.3 and 0.03 scored within a
#: point of each other (0.73, 0.74, first feature set); extra trees, gradient boosting, an
#: RBF SVM and an MLP within two points.
_REGULARISATION = 0.3
_SAVED_ARRAYS = ("features", "categories", "example_features", "example_categories")
_MAX_EXAMPLES = 300  # newest named stems kept per category: bounds the refit
_REFIT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CategoryGuess:
    category: str
    confidence: float
    source: str  # "filename" | "audio"


def category_from_name(name: str, rules: AnalysisRules) -> CategoryGuess | None:
    """Category named by the file name, else by the innermost folder naming one.

    Within one name part the longest phrase wins, then the higher priority; a part
    without any phrase may still start with a category word ("bassloops"). A word of an
    instrument category (``role = false`` in categories.toml: "synth", "piano") says how
    a sound is made, not its role in a track, so a folder naming a role wins over it
    ("Basses/Synth Acid.wav" is a bass, "Leads/Synth 03.wav" a lead).
    """
    guesses = [guess for depth, tokens in enumerate(name_parts(name))
               if (guess := _part_guess(tokens, rules, depth=depth))]
    roles = [guess for guess in guesses if rules.categories[guess.category].role]
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
                 for kind, phrases in rules.categories.kind_phrases.items()}
        kind, size = max(sizes.items(), key=lambda item: item[1])
        if size:
            return kind
    return None


def choose_kind(*, named: str | None, rule: CategoryRule, pulse_fits_length: bool,
                sustained: bool, duration: float) -> tuple[str, str]:
    """Loop or one-shot, and what decided it: the name (``"filename"``), else a pulse whose
    tempo fits whole bars (``"audio"``), else the category's default (``"category"``), else
    sustained energy to the end (``"audio"``: loops do not decay away).

    A loop must last at least one bar at the fastest loop tempo (1.2 s at 200 BPM).
    """
    if named:
        return named, "filename"
    if duration < 1.2:
        return "oneshot", "audio"
    if pulse_fits_length:
        return "loop", "audio"
    if rule.kind in ("loop", "oneshot"):
        return rule.kind, "category"
    return ("loop" if sustained else "oneshot"), "audio"


@dataclass(frozen=True)
class LinearModel:
    """A fitted softmax regression on standardised features: all that prediction needs.

    `classes` ``(k,)``, `mean` and `scale` ``(d,)`` (the standardisation), `coef` ``(k, d)``
    and `intercept` ``(k,)``; plain arrays, so loading one runs no code and needs no
    scikit-learn.
    """

    classes: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, k)`` of ``(n, d)`` `vectors`."""
        logits = ((vectors - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        odds = np.exp(logits)
        return odds / odds.sum(axis=1, keepdims=True)


class CategoryClassifier:
    """Audio-only category classifier: logistic regression on the standardised feature
    vector, trained on a base set (the shipped corpus of real recordings) plus the user's
    own named stems (`with_examples`), which weigh `EXAMPLE_WEIGHT` times as much."""

    def __init__(self) -> None:
        self._base: tuple[np.ndarray, np.ndarray] | None = None
        self._examples: tuple[np.ndarray, np.ndarray] | None = None
        self._model: LinearModel | None = None

    @property
    def feature_count(self) -> int:
        """Length of the feature vectors this classifier takes (0 before `fit`)."""
        return 0 if self._model is None else int(self._model.mean.size)

    @property
    def example_count(self) -> int:
        """How many of the user's named stems the classifier has learnt from."""
        return 0 if self._examples is None else len(self._examples[1])

    def learnt_on(self, other: CategoryClassifier) -> bool:
        """Whether this classifier's base training set is `other`'s (a library classifier
        learnt on the corpus an earlier release shipped is not the current one's)."""
        return (self._base is not None and other._base is not None
                and np.array_equal(self._base[1], other._base[1])
                and np.array_equal(self._base[0], other._base[0]))

    def fit(self, features: np.ndarray, categories: list[str]) -> None:
        """Train on the base set: ``(n, d)`` `features` labelled with `categories`.

        Forgets examples added before. Raises `ValueError` on mismatched shapes, fewer
        than two categories or a category outside the taxonomy.
        """
        base = _labelled(features, categories)
        if len(set(base[1])) < 2:
            raise ValueError("need at least two categories to train a classifier")
        examples = _labelled(np.empty((0, base[0].shape[1])), [])
        self._base, self._examples = base, examples
        self._model = _fit_linear(base, examples, start=None)

    def with_examples(self, features: np.ndarray, categories: list[str]
                      ) -> CategoryClassifier:
        """A new classifier trained on this one's base set and examples plus these.

        `features` ``(m, d)`` are vectors of real stems whose `categories` came from their
        names. The same vector given again keeps only its latest category, and each
        category keeps its `_MAX_EXAMPLES` most recent examples. This classifier is unchanged.
        The fit starts from this classifier's model, so it takes a fraction of a full fit.
        """
        if self._model is None:
            raise AnalysisError("classifier: with_examples before fit")
        added = _labelled(features, categories, width=self.feature_count)
        merged = _recent_unique(np.concatenate([self._examples[0], added[0]]),
                                np.concatenate([self._examples[1], added[1]]))
        learnt = CategoryClassifier()
        learnt._base, learnt._examples = self._base, merged
        learnt._model = _fit_linear(self._base, merged, start=self._model)
        return learnt

    def predict(self, features: np.ndarray) -> tuple[str, float]:
        """Most probable category of one feature vector, and its probability."""
        if self._model is None:
            raise AnalysisError("classifier: predict before fit")
        vector = np.asarray(features, dtype=np.float32).reshape(1, -1)
        if vector.shape[1] != self.feature_count or not np.all(np.isfinite(vector)):
            raise AnalysisError(f"classifier: bad feature vector of shape {vector.shape}")
        probabilities = self._model.probabilities(vector)[0]
        best = int(np.argmax(probabilities))
        return str(self._model.classes[best]), float(probabilities[best])

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays `save` writes (format: see the module docstring)."""
        if self._model is None:
            raise ValueError("nothing to save: the classifier is not fitted")
        return {"features": self._base[0], "categories": self._base[1],
                "example_features": self._examples[0],
                "example_categories": self._examples[1],
                "feature_version": np.int64(FEATURE_VERSION),
                **{f"model_{name}": getattr(self._model, name) for name in _MODEL_FIELDS}}

    def save(self, path: Path) -> None:
        """Write training sets and fitted model atomically (uncompressed: it is written
        after every kit, and zlib would take longer than the fit)."""
        arrays = self.arrays()
        with atomic_output(Path(path)) as temp, open(temp, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path) -> CategoryClassifier:
        """Read a saved classifier (no refit); `AnalysisError` if unreadable or stale."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                version = int(data["feature_version"])
                if version != FEATURE_VERSION:
                    raise AnalysisError(
                        f"{path}: classifier was trained on feature version {version}, this "
                        f"build computes version {FEATURE_VERSION}; delete or rebuild it")
                arrays = {name: data[name] for name in _SAVED_ARRAYS}
                model = LinearModel(**{name: data[f"model_{name}"] for name in _MODEL_FIELDS})
            base = _labelled(arrays["features"], arrays["categories"])
            examples = _labelled(arrays["example_features"], arrays["example_categories"],
                                 width=base[0].shape[1])
            _check_model(model, width=base[0].shape[1])
        except (OSError, KeyError, ValueError, EOFError) as exc:
            raise AnalysisError(f"{path}: cannot read the classifier: {exc}") from exc
        classifier = cls()
        classifier._base, classifier._examples, classifier._model = base, examples, model
        return classifier


_MODEL_FIELDS = ("classes", "mean", "scale", "coef", "intercept")
_TRAINER = "sklearn.linear_model"


def load_trainer_soon() -> None:
    """Import the trainer's library in a background thread, unless it is loaded: importing
    it takes most of a second, which the first retrain after an ingest would otherwise pay
    while the analysis pool waits for the next kit."""
    if _TRAINER not in sys.modules:
        threading.Thread(target=importlib.import_module, args=(_TRAINER,),
                         name="traum-load-trainer", daemon=True).start()


def _fit_linear(base: tuple[np.ndarray, np.ndarray], examples: tuple[np.ndarray, np.ndarray],
                *, start: LinearModel | None) -> LinearModel:
    """Fit the softmax regression; from `start` (its standardisation and coefficients) when
    given, which cuts the iterations of a refit with a few more examples several-fold."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    vectors = np.concatenate([base[0], examples[0]]).astype(np.float64)
    labels = np.concatenate([base[1], examples[1]])
    weights = np.concatenate([np.ones(len(base[1])), np.full(len(examples[1]), EXAMPLE_WEIGHT)])
    if start is None:
        mean, scale = vectors.mean(axis=0), vectors.std(axis=0)
        scale[scale < 1e-9] = 1.0  # a constant column carries nothing; do not divide by 0
    else:
        mean, scale = start.mean.astype(np.float64), start.scale.astype(np.float64)
    # A refit from `start` stops at a looser tolerance: it moves a converged model by a few
    # examples (measured: a third of the time, lmms named-stem accuracy 0.656 -> 0.662).
    model = LogisticRegression(C=_REGULARISATION, max_iter=3000, warm_start=True,
                               tol=_REFIT_TOLERANCE if start is not None else 1e-4)
    if start is not None and np.array_equal(start.classes, np.unique(labels)) and (
            start.classes.size > 2):
        model.coef_, model.intercept_ = start.coef.astype(np.float64), start.intercept.copy()
    # One BLAS thread: BLAS threads contending for cores that the ingest pool keeps busy
    # stretched a 0.1 s fit to 1-7 s (measured on 2 cores).
    with threadpool_limits(1):
        model.fit((vectors - mean) / scale, labels, sample_weight=weights)
    coef, intercept = model.coef_, model.intercept_
    if model.classes_.size == 2:  # binary: one logit; as softmax, class 0 has logit 0
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
    return LinearModel(classes=model.classes_.astype(str), mean=mean.astype(np.float32),
                       scale=scale.astype(np.float32), coef=coef.astype(np.float32),
                       intercept=intercept.astype(np.float32))


def _check_model(model: LinearModel, *, width: int) -> None:
    classes = model.classes.size
    shapes = (model.mean.shape, model.scale.shape, model.coef.shape, model.intercept.shape)
    if shapes != ((width,), (width,), (classes, width), (classes,)):
        raise ValueError(f"model arrays do not fit {width} features and {classes} classes")
    if not all(np.all(np.isfinite(array)) for array in (model.mean, model.coef,
                                                         model.intercept)):
        raise ValueError("model arrays must be finite")
    if np.any(model.scale <= 0):
        raise ValueError("model scale must be positive")
    _labelled(np.zeros((classes, width)), model.classes)  # classes within the taxonomy


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
    unknown = sorted(set(labels) - set(CATEGORIES))
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
