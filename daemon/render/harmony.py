"""Harmony checked by ear: the key a tonal stem really has, and how well stems mash up.

A stored key is a hypothesis (from a file name, or from the ingest's analysis). Before a tonal
stem plays, the renderer listens: it correlates the stem's summed chroma (`daemon.render.
chroma`) with the 24 key profiles (`daemon.keys.key_scores`) and compares the labelled key's
scale with the best one. A key and its relative share a scale, so they fit alike.

* The audio overrides the label when another scale fits clearly better (`MARGIN`) and well
  (`MIN_FIT`): a G-minor loop named "_Dm" is played as G minor.
* Bass lines and drones sound few notes, so a fifth or the parallel mode is often nearly
  tied. Such a stem keeps its label, unless its kit's labels are wrong by one interval: when
  at least `KIT_VOTES` stems of a kit clearly disagree with their labels by the same
  interval and fewer clearly agree, the kit's ambiguous stems are corrected by it too.

Mashability (Davies et al., "AutoMashUpper", 2014) is the beat-synchronous chroma agreement
of two stems after their shifts: the mean cosine of their beat chroma over a common cycle.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from daemon.categories import CategoryTable
from daemon.errors import PlanError, RenderError
from daemon.keys import format_key, key_scores, parse_key, relative_key
from daemon.render.chroma import beat_chroma, stem_chroma
from daemon.store.records import StemRecord

log = logging.getLogger("traum.render")

MARGIN = 0.15  # another scale must fit the audio this much better to override a label
MIN_FIT = 0.5  # ... and fit at least this well (correlation with its key profile)
KIT_VOTES = 2  # clear disagreements by one interval that make a kit's labels suspect
KIT_TOLERANCE = 0.1  # an ambiguous stem follows its kit's interval if it fits about as well
MODE_TIE = 0.1  # parallel keys this close are one tonic heard in an undecided mode


@dataclass(frozen=True)
class Hearing:
    """What the ear made of one tonal stem.

    `label` is the stored key, `heard` the best key by ear (None when the chroma is empty),
    `key` the key the renderer uses and `source` why: ``"label"`` (the audio agrees, or is
    undecided), ``"audio"`` (the audio overrides the label), ``"kit"`` (the kit's labels are
    wrong by one interval) or ``"none"`` (no key at all). `fit` is how well the used key's
    scale fits the audio (correlation, -1..1); `scores` the 24 key correlations.
    """

    stem_id: int
    label: str | None
    heard: str | None
    key: str | None
    source: str
    fit: float
    scores: tuple[float, ...]

    @property
    def overridden(self) -> bool:
        return self.key != self.label

    def describe(self) -> str:
        """One line for the report: what the label said and what the ear did."""
        if self.source == "audio":
            return f"labelled {self.label or 'no key'}, heard {self.key} (fit {self.fit:.2f})"
        if self.source == "kit":
            return (f"labelled {self.label}, played as {self.key}: the kit's labels are off by "
                    f"the same interval (fit {self.fit:.2f})")
        return f"labelled {self.label}, confirmed by ear (fit {self.fit:.2f})"


def scale_fit(scores: Sequence[float], key: str) -> float:
    """How well `key`'s scale fits a chroma: the better of the key's and its relative's
    correlation in `scores` (``key_scores`` order: C..B major, then C..B minor)."""
    tonic, mode = parse_key(key)
    other, other_mode = relative_key(tonic, mode)
    return max(scores[_index(tonic, mode)], scores[_index(other, other_mode)])


def judge(stem_id: int, label: str | None, scores: Sequence[float]) -> Hearing:
    """The key to play a stem in, from its label and its key correlations `scores`."""
    if not any(scores):
        return Hearing(stem_id, label, None, label, "label" if label else "none", 0.0,
                       tuple(scores))
    heard, top = _best_key(scores, mode=parse_key(label)[1] if label else "minor")
    if label is not None and top - scale_fit(scores, label) < MARGIN:
        return Hearing(stem_id, label, heard, label, "label", scale_fit(scores, label),
                       tuple(scores))
    if top >= MIN_FIT:
        return Hearing(stem_id, label, heard, heard, "audio", top, tuple(scores))
    fit = scale_fit(scores, label) if label else 0.0
    return Hearing(stem_id, label, heard, label, "label" if label else "none", fit,
                   tuple(scores))


class Ear:
    """The renderer's ear for one render: every tonal stem of `stems` heard and judged kit by
    kit (see the module docstring); `hearings` maps stem id → `Hearing`. A stem whose file
    cannot be decoded is left out: it keeps its label, and fails where it is read again."""

    def __init__(self, stems: Sequence[StemRecord], *, cache_dir: Path,
                 categories: CategoryTable) -> None:
        self._frames: dict[int, np.ndarray] = {}
        by_kit: dict[str, list[Hearing]] = defaultdict(list)
        for stem in stems:
            rule = categories.get(stem.category)
            if rule is None or not rule.tonal:
                continue
            try:
                frames = stem_chroma(stem, cache_dir=cache_dir)
            except RenderError as exc:
                log.warning("cannot hear %s: %s", stem.rel_path, exc)
                continue
            self._frames[stem.id] = frames
            by_kit[stem.kit].append(judge(stem.id, _label(stem.key),
                                          key_scores(frames.sum(axis=1))))
        self.hearings: dict[int, Hearing] = {
            hearing.stem_id: hearing for hearings in by_kit.values()
            for hearing in correct_by_kit(hearings)}

    def beats(self, stem: StemRecord, *, source_bpm: float | None,
              semitones: int) -> np.ndarray | None:
        """The stem's beat chroma ``(12, beats)`` as it plays: at `source_bpm` (None: one
        column, a one-shot), rolled by `semitones` (rolling the chroma is shifting the
        audio); None for a stem the ear did not hear."""
        frames = self._frames.get(stem.id)
        if frames is None:
            return None
        beats = beat_chroma(frames, beat_seconds=60.0 / source_bpm if source_bpm else None)
        return np.roll(beats, semitones, axis=0)


def hear_stems(stems: Sequence[StemRecord], *, cache_dir: Path,
               categories: CategoryTable) -> dict[int, str | None]:
    """Stem id → the key the renderer plays each tonal stem of `stems` in (`Ear`)."""
    ear = Ear(stems, cache_dir=cache_dir, categories=categories)
    return {stem_id: hearing.key for stem_id, hearing in ear.hearings.items()}


def correct_by_kit(hearings: Sequence[Hearing]) -> list[Hearing]:
    """Apply the kit's consistent label error (`kit_interval`): a stem whose label the ear
    could not judge, or whose heard key differs from its label moved by the interval, plays
    its label moved by the interval when that fits about as well (`KIT_TOLERANCE`). An arp
    on the sixth degree of G minor reads as E-flat major; its kit says G minor."""
    interval = kit_interval(hearings)
    if not interval:
        return list(hearings)
    corrected = []
    for hearing in hearings:
        if hearing.label is not None and hearing.source in ("label", "audio"):
            tonic, mode = parse_key(hearing.label)
            moved = format_key(tonic + interval, mode)
            fit = scale_fit(hearing.scores, moved)
            if moved != hearing.key and fit >= hearing.fit - KIT_TOLERANCE:
                hearing = replace(hearing, key=moved, source="kit", fit=fit)
        corrected.append(hearing)
    return corrected


def kit_interval(hearings: Sequence[Hearing]) -> int:
    """The interval (pitch classes, 1..11) by which a kit's labels are wrong, or 0.

    Each clear override votes for its interval between label and heard scale; each stem whose
    heard scale is its label's, heard clearly, votes for 0."""
    votes: Counter[int] = Counter()
    for hearing in hearings:
        if hearing.label is None or hearing.heard is None or hearing.fit < MIN_FIT:
            continue
        if hearing.source == "audio":
            votes[(_minor_tonic(hearing.heard) - _minor_tonic(hearing.label)) % 12] += 1
        elif _minor_tonic(hearing.heard) == _minor_tonic(hearing.label):
            votes[0] += 1
    interval, count = max(votes.items(), key=lambda item: (item[1], -item[0]),
                          default=(0, 0))
    return interval if interval and count >= KIT_VOTES and count > votes[0] else 0


def mashability(first: np.ndarray, second: np.ndarray) -> float:
    """Beat-synchronous chroma agreement (0..1) of two beat chroma ``(12, beats)`` (from
    `Ear.beats`): the mean cosine over the beats where both sound, each tiled to the
    longer cycle (loops of 1, 2, 4, 8 bars line up); 0.5 when they never sound together."""
    length = max(first.shape[1], second.shape[1])
    a = first[:, np.arange(length) % first.shape[1]]
    b = second[:, np.arange(length) % second.shape[1]]
    both = (np.linalg.norm(a, axis=0) > 0) & (np.linalg.norm(b, axis=0) > 0)
    if not both.any():
        return 0.5
    return float(np.mean(np.sum(a[:, both] * b[:, both], axis=0)))


def _best_key(scores: Sequence[float], *, mode: str) -> tuple[str, float]:
    """The best-fitting key and its correlation; its parallel key in `mode` when that fits
    nearly as well (`MODE_TIE`): root-and-fifth lines leave the mode to the label."""
    best = int(np.argmax(scores))
    tonic, found = best % 12, "major" if best < 12 else "minor"
    if found != mode and scores[_index(tonic, mode)] >= scores[best] - MODE_TIE:
        found = mode
    return format_key(tonic, found), float(scores[_index(tonic, found)])


def _index(tonic: int, mode: str) -> int:
    return tonic % 12 + (12 if mode == "minor" else 0)


def _minor_tonic(key: str) -> int:
    """The tonic of the minor key with `key`'s scale (A minor for C major)."""
    tonic, mode = parse_key(key)
    return tonic if mode == "minor" else relative_key(tonic, mode)[0]


def _label(key: str | None) -> str | None:
    """A stored key, or None when it is not canonical (then the ear decides alone)."""
    if key is None:
        return None
    try:
        parse_key(key)
    except PlanError:
        return None
    return key
