"""Leave one corpus out: how the category classifier does on a source it never trained on.

For every source of the shipped corpus (`daemon.ingest.corpus`), fit the classifier on the
rows of every other source (their recordings and augmented copies) and predict the left-out
source's recordings (augmented copies of them are not tested). Nothing is tuned here: the
classifier is the shipped one's recipe (`CategoryClassifier.fit`), trained six times.

Reported per source: overall accuracy, drum one-shot accuracy (kick, snare, clap, hi-hat,
cymbal and tom/perc, where a tom read as perc or the other way round counts as right, as
issue 12's targets count it), per-category recall, and one pooled confusion matrix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.corpus import Corpus

#: Drum one-shot categories of issue 12's target; tom and perc count as one group.
DRUM_ONESHOTS = ("kick", "snare", "clap", "hihat", "cymbal", "tom", "perc")
#: Sources that are generated, not recorded: the drum target is for the recorded ones.
GENERATED = ("synth",)
DRUM_TARGET, OVERALL_TARGET = 0.90, 0.85


@dataclass(frozen=True)
class Fold:
    """Predictions for one left-out source's recordings."""

    source: str
    file_ids: np.ndarray
    truth: np.ndarray
    predicted: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.truth == self.predicted))

    @property
    def drum_accuracy(self) -> float | None:
        """Share of drum one-shots read right, tom and perc as one group (None: no drums)."""
        drums = np.isin(self.truth, DRUM_ONESHOTS)
        if not drums.any():
            return None
        return float(np.mean(_grouped(self.truth[drums]) == _grouped(self.predicted[drums])))

    def recall(self) -> dict[str, tuple[float, int]]:
        """Category → (recall, count) over this source's recordings."""
        return {category: (float(np.mean(self.predicted[self.truth == category] == category)),
                           int(np.sum(self.truth == category)))
                for category in sorted(set(self.truth))}


def _grouped(categories: np.ndarray) -> np.ndarray:
    return np.where(np.isin(categories, ("tom", "perc")), "tom/perc", categories)


def held_out(corpus: Corpus, source: str) -> CategoryClassifier:
    """The shipped classifier's recipe trained on every corpus source except `source`."""
    classifier = CategoryClassifier()
    classifier.fit(*corpus.rows(corpus.sources != source))
    return classifier


def leave_one_source_out(corpus: Corpus) -> list[Fold]:
    """One `Fold` per source, in the order the sources first appear in the table."""
    folds = []
    for source in dict.fromkeys(corpus.sources.tolist()):
        classifier = held_out(corpus, source)
        tested = (corpus.sources == source) & (corpus.variants == 0)
        predicted = [classifier.predict(vector)[0] for vector in corpus.features[tested]]
        folds.append(Fold(source, corpus.file_ids[tested], corpus.categories[tested],
                          np.array(predicted)))
    return folds


def summary(folds: list[Fold]) -> dict:
    """JSON-ready figures: per source, pooled, and whether the targets are met."""
    truth = np.concatenate([fold.truth for fold in folds])
    predicted = np.concatenate([fold.predicted for fold in folds])
    recorded = [fold for fold in folds if fold.source not in GENERATED]
    return {
        "sources": {fold.source: {"n": int(fold.truth.size), "accuracy": fold.accuracy,
                                  "drum_oneshots": fold.drum_accuracy,
                                  "recall": {c: r for c, (r, _) in fold.recall().items()}}
                    for fold in folds},
        "overall": float(np.mean(truth == predicted)),
        "overall_recorded": float(np.mean(np.concatenate(
            [fold.truth == fold.predicted for fold in recorded]))),
        "drum_target_met": all((fold.drum_accuracy or 1.0) >= DRUM_TARGET for fold in recorded),
        "confusion": confusion(truth, predicted),
    }


def confusion(truth: np.ndarray, predicted: np.ndarray) -> dict[str, dict[str, int]]:
    """Truth → predicted → count, over every tested recording."""
    pairs = Counter(zip(truth.tolist(), predicted.tolist()))
    return {actual: {guess: count for (row, guess), count in sorted(pairs.items())
                     if row == actual}
            for actual in sorted(set(truth.tolist()))}


def markdown(folds: list[Fold]) -> str:
    """The per-source table, per-category recall table and pooled confusion matrix."""
    report = summary(folds)
    lines = ["| left-out source | recordings | accuracy | drum one-shots |", "|---|---|---|---|"]
    for fold in folds:
        drums = "-" if fold.drum_accuracy is None else f"{fold.drum_accuracy:.2f}"
        lines.append(f"| {fold.source} | {fold.truth.size} | {fold.accuracy:.2f} | {drums} |")
    lines.append(f"| **all** | {sum(f.truth.size for f in folds)} | {report['overall']:.2f} | |")
    lines.append(f"\nTargets: drum one-shots >= {DRUM_TARGET} on every recorded source "
                 f"({'met' if report['drum_target_met'] else 'not met'}), overall >= "
                 f"{OVERALL_TARGET} ({report['overall']:.2f}; recorded sources only "
                 f"{report['overall_recorded']:.2f}).\n")
    categories = sorted({c for fold in folds for c in fold.truth.tolist()})
    lines += ["| category | " + " | ".join(f.source for f in folds) + " |",
              "|---" * (len(folds) + 1) + "|"]
    for category in categories:
        cells = [_recall_cell(fold, category) for fold in folds]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    guessed = sorted({c for row in report["confusion"].values() for c in row})
    lines += ["\nConfusion (rows: truth, columns: predicted), all left-out recordings:\n",
              "| truth \\ predicted | " + " | ".join(guessed) + " |",
              "|---" * (len(guessed) + 1) + "|"]
    for actual, row in report["confusion"].items():
        lines.append(f"| {actual} | " + " | ".join(str(row.get(g, "")) for g in guessed) + " |")
    return "\n".join(lines)


def _recall_cell(fold: Fold, category: str) -> str:
    recall = fold.recall().get(category)
    return "" if recall is None else f"{recall[0]:.2f} ({recall[1]})"
