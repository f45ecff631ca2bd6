"""Choose the stem of every lane in every section of a plan.

A *lane* is one (category, index) slot of the plan, named ``bass``, ``bass2`` ... It keeps its
stem across sections, because producers expect the same bass throughout, except that
top-line lanes (`VARIATION`) take a fresh stem when a section type comes back ("Drop 2").

Candidates of the lane's category are filtered (`fit_stem`: tempo within the stretch range,
key within the pitch-shift range, not silent) and ranked by a weighted sum (`WEIGHTS`) of tag
overlap, tempo and key fit, loudness sanity, kit coherence, feature-vector similarity to the
stems already chosen, classifier confidence, loop/one-shot suitability and an optional
caller-supplied score. When a category cannot be served, related categories (`RELATED`) stand
in, or the lane is left out; every such fallback is reported. The only randomness is a small
seeded jitter that breaks ties, so a seed always yields the same choice.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from daemon.compose.plan import Plan, StemQuery, parse_key
from daemon.config import RenderSettings
from daemon.errors import PlanError
from daemon.render.sequence import drop_sections, section_occurrence, stem_words
from daemon.store.records import StemRecord
from daemon.taxonomy import TONAL_CATEGORIES

#: Stand-ins, best first, when the library has no usable stem of a category.
RELATED: Mapping[str, tuple[str, ...]] = {
    "kick": ("drum_loop",), "snare": ("clap",), "clap": ("snare",),
    "hihat": ("cymbal", "perc"), "cymbal": ("hihat",), "perc": ("tom", "hihat"),
    "tom": ("perc",), "bass": ("synth",), "chord": ("pad", "keys", "synth"),
    "pad": ("chord", "atmo", "synth"), "keys": ("chord", "pad"), "synth": ("lead", "chord", "arp"),
    "lead": ("synth", "arp", "pluck"), "arp": ("synth", "lead", "pluck"),
    "pluck": ("arp", "synth"), "stab": ("chord", "synth"), "atmo": ("pad",),
}
#: A category that cannot be served at all is rebuilt from these (one-shots on patterns).
EXPANSIONS: Mapping[str, tuple[str, ...]] = {"drum_loop": ("kick", "hihat")}
#: Lanes that change stem when a section type repeats; the groove and the bass never do.
VARIATION = frozenset({"lead", "arp", "synth", "pluck", "perc", "tom", "vocal", "fx"})
#: Weight of each ranking criterion; every criterion scores 0..1. Tags and the caller's score
#: (a prompt similarity) dominate because they carry the prompt's meaning.
WEIGHTS: Mapping[str, float] = {"tags": 2.0, "moods": 0.5, "tempo": 1.5, "key": 1.5,
                                "loudness": 0.5, "kit": 1.0, "similarity": 1.0,
                                "confidence": 0.5, "kind": 1.0, "extra": 1.5}
JITTER = 0.02  # tie-breaker, far below any real criterion difference
SILENT_DB = -60.0  # integrated loudness / peak below this: a silent file, never chosen
LOUDNESS_WINDOW = (-30.0, -6.0)  # LUFS range of sanely produced stems
MIN_DURATION = 0.02  # seconds; anything shorter is a glitch, not a sample
TEMPO_MULTIPLES = (1.0, 0.5, 2.0)  # as-is, then half and double time
OFF_TEMPO_PENALTY = 0.9  # half or double time fits, but less naturally than the stated tempo
RISER_TAG = "riser"  # wanted of an fx lane that leads into a drop


@dataclass(frozen=True)
class Fit:
    """How one stem fits the plan: speed factor, effective tempo, key shift and their scores."""

    stretch_ratio: float  # playback speed plan_bpm / source_bpm (1.0 untouched, one-shots)
    source_bpm: float | None  # the stem's tempo after half/double-time reading
    semitones: int
    tempo_score: float
    key_score: float


@dataclass(frozen=True)
class Pick:
    """The stem playing in one lane of one section."""

    section: int
    lane: str
    category: str  # the lane's category (the stem's own may differ after a fallback)
    stem: StemRecord
    fit: Fit


@dataclass(frozen=True)
class Selection:
    picks: tuple[Pick, ...]
    fallbacks: tuple[str, ...]


def tempo_fit(stem_bpm: float, plan_bpm: float, max_stretch: float) -> tuple[float, float] | None:
    """Return (speed ratio, effective source bpm) of the best tempo reading, or None when no
    reading lies within `max_stretch` (largest allowed |1 - ratio|)."""
    best = min(TEMPO_MULTIPLES, key=lambda m: abs(1.0 - plan_bpm / (stem_bpm * m)))
    ratio = plan_bpm / (stem_bpm * best)
    if abs(1.0 - ratio) > max_stretch + 1e-9:
        return None
    return ratio, stem_bpm * best


def key_shift(stem_key: str, plan_key: str) -> tuple[int, str]:
    """Smallest shift (semitones, -5..6) moving `stem_key` onto `plan_key` or its relative,
    and the relation: ``"same"``, ``"relative"`` (shift 0, other mode) or ``"shift"``."""
    stem_pc, stem_mode = parse_key(stem_key)
    plan_pc, plan_mode = parse_key(plan_key)
    if stem_mode != plan_mode:
        # The relative key shares the scale: A minor ≡ C major (minor tonic + 3 semitones).
        stem_pc = (stem_pc + (3 if stem_mode == "minor" else 9)) % 12
    diff = (plan_pc - stem_pc) % 12
    shift = diff - 12 if diff > 6 else diff
    if shift:
        return shift, "shift"
    return 0, "same" if stem_mode == plan_mode else "relative"


def fit_stem(stem: StemRecord, *, plan: Plan, settings: RenderSettings) -> Fit | None:
    """How `stem` fits `plan`, or None when it cannot be used (silent, too short, tempo or key
    out of range, a loop without tempo)."""
    if stem.duration < MIN_DURATION or stem.peak_db < SILENT_DB or (
            stem.lufs is not None and stem.lufs < SILENT_DB):
        return None
    ratio, source_bpm, tempo_score = 1.0, None, 1.0
    if stem.kind == "loop":
        if not stem.bpm:
            return None
        reading = tempo_fit(stem.bpm, plan.bpm, settings.max_stretch)
        if reading is None:
            return None
        ratio, source_bpm = reading
        slack = abs(1.0 - ratio) / settings.max_stretch if settings.max_stretch else 0.0
        tempo_score = (1.0 - 0.5 * slack) * (1.0 if source_bpm == stem.bpm else OFF_TEMPO_PENALTY)
    semitones, key_score = _key_fit(stem, plan.key)
    if abs(semitones) > settings.max_semitones:
        return None
    return Fit(ratio, source_bpm, semitones, tempo_score, key_score)


def select_stems(plan: Plan, stems: Sequence[StemRecord], *, settings: RenderSettings,
                 extra_scores: Mapping[int, float] | None = None) -> Selection:
    """Pick a stem for every lane of every section; deterministic for ``plan.seed``.

    A section repeats when its name, without part letter and number ("Drop 2 A" → "drop"),
    was seen before under another occurrence ("Drop 1 A", "Drop 1 B" are one occurrence).
    FX lanes in the section before a drop ask for a riser.
    """
    selector = _Selector(plan, stems, settings, extra_scores or {})
    drops = drop_sections(plan)
    seen: dict[str, str] = {}  # role → first occurrence
    for index, section in enumerate(plan.structure):
        occurrence = section_occurrence(section.section)
        role = re.sub(r"[\s\d_-]+$", "", occurrence) or occurrence
        repeat = seen.setdefault(role, occurrence) != occurrence
        queries = [replace(q, tags=(*q.tags, RISER_TAG)) if q.category == "fx"
                   and index + 1 in drops and RISER_TAG not in q.tags else q
                   for q in section.stem_queries]
        selector.fill_section(index, queries, repeat=repeat)
    return Selection(tuple(selector.picks), tuple(selector.fallbacks.values()))


def lane_name(category: str, index: int) -> str:
    """``bass`` for the first lane of a category, ``bass2`` for the second..."""
    return category if index == 0 else f"{category}{index + 1}"


def _key_fit(stem: StemRecord, plan_key: str) -> tuple[int, float]:
    """(semitones, key score) of a stem; drums and unknown keys need no shift."""
    if stem.category not in TONAL_CATEGORIES:
        return 0, 1.0
    if not stem.key:
        return 0, 0.5  # tonal but unanalysed: usable, ranked below keyed stems
    try:
        shift, relation = key_shift(stem.key, plan_key)
    except PlanError:
        return 0, 0.5
    score = {"same": 1.0, "relative": 0.9}.get(relation, 0.8 - 0.1 * (abs(shift) - 1))
    return shift, score


def _overlap(wanted: Sequence[str], words: set[str]) -> float:
    wanted_set = {tag.lower() for tag in wanted}
    if not wanted_set:
        return 0.0
    return len(wanted_set & words) / len(wanted_set)


class _Selector:
    """Selection state while walking the plan: lanes' stems, chosen kits and vectors."""

    def __init__(self, plan: Plan, stems: Sequence[StemRecord], settings: RenderSettings,
                 extra: Mapping[int, float]) -> None:
        self.plan = plan
        self.extra = extra
        self.rng = np.random.default_rng(plan.seed)
        self.library = Counter(stem.category for stem in stems)
        self.fits = {stem.id: fit for stem in stems
                     if (fit := fit_stem(stem, plan=plan, settings=settings)) is not None}
        self.by_category: dict[str, list[StemRecord]] = {}
        for stem in sorted(stems, key=lambda s: s.id):
            if stem.id in self.fits:
                self.by_category.setdefault(stem.category, []).append(stem)
        self.picks: list[Pick] = []
        self.fallbacks: dict[str, str] = {}
        self.current: dict[str, StemRecord] = {}
        self.history: dict[str, set[int]] = {}
        self.kits: Counter[str] = Counter()
        self.vectors: list[tuple[str | None, np.ndarray]] = []
        self.words: dict[int, set[str]] = {}

    def fill_section(self, section: int, queries: Sequence[StemQuery], *, repeat: bool) -> None:
        slots = [(lane_name(query.category, index), query)
                 for query in self._expand(queries) for index in range(query.count)]
        # Lanes that keep their stem go first, so new lanes see what already plays here.
        keeps = {lane for lane, query in slots if lane in self.current
                 and not (repeat and query.category in VARIATION)}
        used = {self.current[lane].id for lane in keeps}
        for lane, query in sorted(slots, key=lambda slot: slot[0] not in keeps):
            stem = self._stem_for(lane, query, used, repeat=repeat)
            if stem is not None:
                used.add(stem.id)
                self.picks.append(Pick(section, lane, query.category, stem, self.fits[stem.id]))

    def _expand(self, queries: Sequence[StemQuery]) -> list[StemQuery]:
        """Replace unservable categories that have an expansion (drum_loop → kick + hihat)."""
        present = {query.category for query in queries}
        result: list[StemQuery] = []
        for query in queries:
            parts = EXPANSIONS.get(query.category, ())
            if self._tiers(query.category) or not parts:
                result.append(query)
                continue
            added = [part for part in parts if part not in present and self._tiers(part)]
            present.update(added)
            result.extend(replace(query, category=part, count=1) for part in added)
            note = f"built from {' + '.join(added)} one-shots" if added else "lane left out"
            self.fallbacks.setdefault(query.category,
                                      f"{query.category}: {self._why_none(query.category)}; {note}")
        return result

    def _stem_for(self, lane: str, query: StemQuery, used: set[int], *,
                  repeat: bool) -> StemRecord | None:
        """The lane's stem in this section; None leaves it out. Stems already playing in the
        section (`used`) are never doubled: the same loop twice only makes it louder."""
        current = self.current.get(lane)
        history = self.history.setdefault(lane, set())
        if current is not None:
            if not (repeat and query.category in VARIATION):
                return current
            # A variation must serve the query as well as the current stem (a riser stays a
            # riser).
            fresh = self._best(query, query.category, exclude=used | history)
            words = self._words
            if fresh is None or _overlap(query.tags, words(fresh)) < _overlap(query.tags,
                                                                              words(current)):
                return current
            return self._commit(lane, fresh)
        for category in self._tiers(query.category):
            stem = self._best(query, category, exclude=used)
            if stem is None:
                continue
            if category != query.category:
                self.fallbacks.setdefault(lane, f"{lane}: {self._why_none(query.category, used)}"
                                                f"; used {category}")
            return self._commit(lane, stem)
        why = self._why_none(query.category, used)
        stand_ins = [c for c in self._tiers(query.category) if c != query.category]
        if stand_ins:
            why += f", stand-ins ({', '.join(stand_ins)}) already play here"
        self.fallbacks.setdefault(lane, f"{lane}: {why}; lane left out")
        return None

    def _tiers(self, category: str) -> list[str]:
        """The categories that can serve `category`, own first, that have usable stems."""
        return [c for c in (category, *RELATED.get(category, ())) if self.by_category.get(c)]

    def _why_none(self, category: str, used: set[int] = frozenset()) -> str:
        if any(s.id in used for s in self.by_category.get(category, [])):
            return f"every usable {category} already plays here"
        count = self.library[category]
        if not count:
            return "none in library"
        return f"{count} in library, none within tempo/key range"

    def _words(self, stem: StemRecord) -> set[str]:
        return self.words.setdefault(stem.id, stem_words(stem))

    def _commit(self, lane: str, stem: StemRecord) -> StemRecord:
        self.current[lane] = stem
        self.history[lane].add(stem.id)
        self.kits[stem.kit] += 1
        if stem.embedding is not None:
            self.vectors.append((stem.embedding_model,
                                 np.asarray(stem.embedding, dtype=np.float64)))
        return stem

    def _best(self, query: StemQuery, category: str, *, exclude: set[int]) -> StemRecord | None:
        candidates = [s for s in self.by_category.get(category, []) if s.id not in exclude]
        if not candidates:
            return None
        scores = [self._score(stem, query) for stem in candidates]
        jitter = self.rng.uniform(0.0, JITTER, size=len(candidates))
        return candidates[int(np.argmax(np.asarray(scores) + jitter))]

    def _score(self, stem: StemRecord, query: StemQuery) -> float:
        fit = self.fits[stem.id]
        low, high = LOUDNESS_WINDOW
        words = self._words(stem)
        parts = {
            "tags": _overlap(query.tags, words),
            "moods": _overlap(self.plan.moods, words),
            "tempo": fit.tempo_score,
            "key": fit.key_score,
            "loudness": 0.5 if stem.lufs is None else float(low <= stem.lufs <= high),
            "kit": self.kits[stem.kit] / max(1, sum(self.kits.values())),
            "similarity": self._similarity(stem),
            "confidence": min(1.0, max(0.0, stem.category_confidence)),
            "kind": (0.5 if stem.kind != "loop" and query.category in TONAL_CATEGORIES
                     else 1.0),
            "extra": min(1.0, max(0.0, float(self.extra.get(stem.id, 0.0)))),
        }
        return sum(WEIGHTS[name] * value for name, value in parts.items())

    def _similarity(self, stem: StemRecord) -> float:
        """Mean cosine similarity (mapped to 0..1) to the chosen stems' vectors; 0.5 unknown."""
        if stem.embedding is None:
            return 0.5
        vector = np.asarray(stem.embedding, dtype=np.float64)
        others = [v for model, v in self.vectors
                  if model == stem.embedding_model and v.shape == vector.shape]
        norm = np.linalg.norm(vector)
        if not others or norm == 0:
            return 0.5
        cosines = [float(vector @ v) / (norm * (np.linalg.norm(v) or 1.0)) for v in others]
        return (1.0 + float(np.mean(cosines))) / 2.0
