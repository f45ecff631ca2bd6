"""How well a stem serves a lane: a weighted sum of criteria, each 0..1, kept as a breakdown.

The breakdown is what `traum plan --explain` and the render report show for the chosen stem
and its runner-up:

genre       its kit belongs to the prompt's genre family (inferred families count by their
            confidence); 0.5 without kit profiles
kit         1 for a backbone kit, else the share of stems chosen so far from its kit
tempo, key  how little it must be stretched and shifted (by the key the ear hears)
chroma      tonal stems: how well the shifted audio fits the plan's key, and how well it
            mashes with the tonal stems already chosen (beat-synchronous chroma agreement)
role        how sure its category is, once its audio passed the lane's role check
similarity  closeness of its vector to the stems already chosen
tags, moods the query's tags and the prompt's moods in its tags and name
loudness    a sanely produced level; kind: loop vs one-shot suitability; extra: a caller's
            score, such as a prompt similarity from a text-capable embedding
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from daemon.categories import CategoryTable
from daemon.compose.plan import Plan, StemQuery
from daemon.render.backbone import Backbone
from daemon.render.harmony import Ear, mashability
from daemon.store.records import StemRecord

#: Weight of each criterion. Tags and the caller's score carry the prompt's meaning; genre and
#: kit keep a track inside its family and kits; tempo, key and chroma keep it in time and tune.
WEIGHTS: Mapping[str, float] = {"genre": 2.0, "kit": 1.5, "tempo": 1.5, "key": 1.5,
                                "chroma": 1.5, "role": 0.5, "similarity": 1.0, "tags": 2.0,
                                "moods": 0.5, "loudness": 0.5, "kind": 1.0, "extra": 1.5}
LOUDNESS_WINDOW = (-30.0, -6.0)  # LUFS range of sanely produced stems


@dataclass(frozen=True)
class Score:
    """A stem's criteria (0..1 each) for one lane; `total` is their weighted sum."""

    parts: Mapping[str, float]

    @property
    def total(self) -> float:
        return sum(WEIGHTS[name] * value for name, value in self.parts.items())

    def as_dict(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in self.parts.items()}


@dataclass
class Scorer:
    """Scores stems for lanes, remembering what was chosen (kits, vectors, tonal stems)."""

    plan: Plan
    categories: CategoryTable
    extra: Mapping[int, float]
    backbone: Backbone | None = None
    genre_of_kit: Mapping[str, float] = field(default_factory=dict)
    ear: Ear | None = None
    kits: Counter[str] = field(default_factory=Counter)
    #: (model, dimension) → (sum of the chosen stems' unit vectors, how many were chosen):
    #: the mean cosine to them is one dot product with that sum, whatever their number.
    directions: dict[tuple[str | None, int], tuple[np.ndarray, int]] = field(
        default_factory=dict)
    tonal: list[np.ndarray] = field(default_factory=list)

    def score(self, stem: StemRecord, query: StemQuery, *, words: set[str], fit,
              role: float) -> Score:
        """The breakdown of `stem` for a lane asking `query` (`fit`: its `select.Fit`)."""
        low, high = LOUDNESS_WINDOW
        tonal = self.categories[query.category].tonal
        return Score({
            "genre": self.genre_of_kit.get(stem.kit, 0.0) if self.backbone else 0.5,
            "kit": self._kit(stem.kit),
            "tempo": fit.tempo_score,
            "key": fit.key_score,
            "chroma": self.chroma(stem, fit) if tonal else 1.0,
            "role": role,
            "similarity": self.similarity(stem),
            "tags": overlap(query.tags, words),
            "moods": overlap(self.plan.moods, words),
            "loudness": 0.5 if stem.lufs is None else float(low <= stem.lufs <= high),
            "kind": 0.5 if stem.kind != "loop" and tonal else 1.0,
            "extra": min(1.0, max(0.0, float(self.extra.get(stem.id, 0.0)))),
        })

    def commit(self, stem: StemRecord, fit) -> None:
        """Remember a chosen stem: its kit, its vector and, if tonal, its beat chroma."""
        self.kits[stem.kit] += 1
        if stem.embedding is not None:
            vector = np.asarray(stem.embedding, dtype=np.float64)
            key = (stem.embedding_model, vector.size)
            total, count = self.directions.get(key, (np.zeros(vector.size), 0))
            norm = np.linalg.norm(vector)
            self.directions[key] = (total + (vector / norm if norm else 0.0), count + 1)
        if self.ear is not None and stem.id in self.ear.hearings:
            beats = self.ear.beats(stem, source_bpm=fit.source_bpm, semitones=fit.semitones)
            if beats is not None:
                self.tonal.append(beats)

    def chroma(self, stem: StemRecord, fit) -> float:
        """Scale fit of the heard key (0..1) averaged with the mashability against the tonal
        stems chosen so far; 0.5 for a stem the ear could not hear."""
        hearing = self.ear.hearings.get(stem.id) if self.ear else None
        if hearing is None:
            return 0.5
        scale = max(0.0, hearing.fit)
        beats = self.ear.beats(stem, source_bpm=fit.source_bpm, semitones=fit.semitones)
        if beats is None or not self.tonal:
            return scale
        mash = float(np.mean([mashability(beats, other) for other in self.tonal]))
        return 0.5 * (scale + mash)

    def similarity(self, stem: StemRecord) -> float:
        """Mean cosine similarity (mapped to 0..1) to the chosen stems' vectors; 0.5 unknown."""
        if stem.embedding is None:
            return 0.5
        chosen = self.directions.get((stem.embedding_model, stem.embedding.size))
        if chosen is None:
            return 0.5
        vector = np.asarray(stem.embedding, dtype=np.float64)
        norm = np.linalg.norm(vector)
        if norm == 0:
            return 0.5
        total, count = chosen
        return (1.0 + float(vector @ total) / (norm * count)) / 2.0

    def _kit(self, kit: str) -> float:
        if self.backbone is not None and kit in self.backbone.kits:
            return 1.0
        return self.kits[kit] / max(1, sum(self.kits.values()))


def overlap(wanted: Sequence[str], words: set[str]) -> float:
    """Share of `wanted` (case-folded) found in `words`."""
    wanted_set = {tag.lower() for tag in wanted}
    if not wanted_set:
        return 0.0
    return len(wanted_set & words) / len(wanted_set)
