"""Choose the stem of every lane in every section of a plan.

A *lane* is one (category, index) slot of the plan, named ``bass``, ``bass2`` ... It keeps its
stem across sections, because producers expect the same bass throughout, except that
top-line lanes (categories that ``vary`` in rules/categories.toml) take a fresh stem when a
section type comes back ("Drop 2").

Labels are hypotheses, checked before they are trusted: tonal stems play in the key the ear
hears (`daemon.render.harmony.Ear`), and a one-shot plays a lane only if its audio is
plausible for the part (`daemon.render.roles`). With kit profiles, a track is built from a
backbone kit (`daemon.render.backbone`): lanes come from the backbone first, then from kits of
the prompt's genre family and kits already playing, and never from more than `MAX_KITS` kits.

Candidates of the lane's category are filtered (`daemon.render.fit.fit_stem`: tempo within
the stretch range, key within the pitch-shift range, not silent) and ranked by
`daemon.render.scoring`. When a
category cannot be served, its ``stand_ins`` serve it, or it is rebuilt from the one-shot
categories it is ``built_from``, or the lane is left out; every such fallback is reported.
The only randomness is a small seeded jitter that breaks ties, so a seed always yields the
same choice.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from daemon.categories import CategoryTable
from daemon.compose.plan import Plan, StemQuery
from daemon.config import RenderSettings
from daemon.kits.family import KitLibrary
from daemon.render.backbone import TIERS, Backbone, choose_backbone
from daemon.render.explain import Candidate, Decision, explain
from daemon.render.fit import Fit, fit_stem
from daemon.render.harmony import Ear
from daemon.render.roles import RoleCheck, check_role
from daemon.render.scoring import Scorer, overlap
from daemon.render.sections import drop_sections, section_occurrence
from daemon.store.records import StemRecord
from daemon.text import fold, tokenize

JITTER = 0.02  # tie-breaker, far below any real criterion difference
RISER_TAG = "riser"  # wanted of an fx lane that leads into a drop
MAX_KITS = 3  # kits one track may draw from (with kit profiles)
OTHER_TIER = TIERS.index("other")


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
    """The picks, one note per lane that fell back or was left out, and why each lane plays
    what it plays (`explanation`, the report's ``"selection"``)."""

    picks: tuple[Pick, ...]
    fallbacks: tuple[str, ...]
    explanation: Mapping[str, Any] | None = None


def select_stems(plan: Plan, stems: Sequence[StemRecord], *, settings: RenderSettings,
                 categories: CategoryTable, extra_scores: Mapping[int, float] | None = None,
                 cache_dir: Path | None = None, kits: KitLibrary | None = None,
                 backbone: Backbone | None = None) -> Selection:
    """Pick a stem for every lane of every section; deterministic for ``plan.seed``.

    A section repeats when its name, without part letter and number ("Drop 2 A" → "drop"),
    was seen before under another occurrence ("Drop 1 A", "Drop 1 B" are one occurrence).
    FX lanes in the section before a drop ask for a riser.

    Parameters
    ----------
    plan : Plan
        The arrangement; its lanes are its sections' stem queries.
    stems : sequence of StemRecord
        The stems the track may draw on: the library, or the kits a render considers
        (`daemon.render.backbone.candidate_kits`), whole kits either way.
    settings : RenderSettings
        Stretch and shift limits (see `daemon.render.fit.fit_stem`).
    categories : CategoryTable
        Category traits: ``tonal``, ``varies``, ``stand_ins``, ``built_from``, ``shape``. A
        lane of a category the table does not define is left out.
    extra_scores : mapping, optional
        Stem id → a caller's score (0..1), such as a prompt similarity.
    cache_dir : Path, optional
        Where the ear caches the tonal stems' chroma (`daemon.render.harmony.Ear`); None
        trusts the key labels.
    kits : KitLibrary, optional
        Kit profiles; with them the track has a backbone kit and stays within `MAX_KITS`.
    backbone : Backbone, optional
        The plan's backbone among `kits`, when the caller chose it already; else it is
        chosen here.

    Returns
    -------
    Selection
        The picks, one note per lane that fell back or was left out, and the explanation.
    """
    if backbone is None and kits is not None:
        backbone = choose_backbone(plan, kits, categories=categories,
                                   max_stretch=settings.max_stretch,
                                   max_semitones=settings.max_semitones)
    ear = None if cache_dir is None else Ear(stems, cache_dir=cache_dir, categories=categories)
    selector = _Selector(plan, stems, settings=settings, categories=categories,
                         extra=extra_scores or {}, ear=ear, backbone=backbone, kits=kits)
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
    fallbacks = (*(backbone.notes[:1] if backbone and not backbone.family_kits else ()),
                 *selector.fallbacks.values())
    return Selection(tuple(selector.picks), tuple(fallbacks), explain(
        plan, selector.decisions, backbone=backbone, overrides=selector.overrides(),
        fallbacks=fallbacks))


def stem_words(stem: StemRecord) -> set[str]:
    """The stem's tags and the words of its file name ("HiHat_Open_02" → hi, hat, open, 02):
    names say things analysis cannot (open hat, riser)."""
    name = tokenize(stem.rel_path or Path(stem.path).name)
    return {fold(tag) for tag in stem.tags} | set(name)


def lane_name(category: str, index: int) -> str:
    """``bass`` for the first lane of a category, ``bass2`` for the second..."""
    return category if index == 0 else f"{category}{index + 1}"


class _Selector:
    """Selection state while walking the plan: lanes' stems, decisions, what was rejected."""

    def __init__(self, plan: Plan, stems: Sequence[StemRecord], *, settings: RenderSettings,
                 categories: CategoryTable, extra: Mapping[int, float], ear: Ear | None,
                 backbone: Backbone | None, kits: KitLibrary | None) -> None:
        self.plan, self.categories, self.settings = plan, categories, settings
        self.hearings = ear.hearings if ear is not None else {}
        self.backbone = backbone
        self.scorer = Scorer(plan, categories, extra, backbone=backbone, ear=ear,
                             genre_of_kit=_genre_parts(kits, backbone))
        self.rng = np.random.default_rng(plan.seed)
        self.library = _library_counts(stems, kits)
        # Tonal stems play in the key the ear hears, which may not be their label's.
        heard = [replace(s, key=h.key) if (h := self.hearings.get(s.id)) and h.overridden
                 else s for s in stems]
        self.fits = {stem.id: fit for stem in heard
                     if (fit := fit_stem(stem, plan=plan, settings=settings,
                                         categories=categories)) is not None}
        self.by_category: dict[str, list[StemRecord]] = {}
        for stem in sorted(heard, key=lambda s: s.id):
            if stem.id in self.fits:
                self.by_category.setdefault(stem.category, []).append(stem)
        self.stems = {stem.id: stem for stem in heard}
        self.picks: list[Pick] = []
        self.decisions: list[Decision] = []
        self.fallbacks: dict[str, str] = {}
        self.current: dict[str, StemRecord] = {}
        self.history: dict[str, set[int]] = {}
        self.words: dict[int, set[str]] = {}
        self.roles: dict[tuple[int, str], RoleCheck] = {}
        self.role_rejects: dict[tuple[int, str], str] = {}
        self.asked: set[str] = set()

    def fill_section(self, section: int, queries: Sequence[StemQuery], *, repeat: bool) -> None:
        slots = [(lane_name(query.category, index), query)
                 for query in self._expand(queries) for index in range(query.count)]
        # Lanes that keep their stem go first, so new lanes see what already plays here; then
        # lanes whose own category the library has, before stand-ins take their stems.
        keeps = {lane for lane, query in slots if lane in self.current
                 and not (repeat and self.categories[query.category].varies)}
        used = {self.current[lane].id for lane in keeps}
        for lane, query in sorted(slots, key=lambda slot: (
                slot[0] not in keeps, not self.by_category.get(slot[1].category))):
            stem = self._stem_for(section, lane, query, used, repeat=repeat)
            if stem is not None:
                used.add(stem.id)
                self.picks.append(Pick(section, lane, query.category, stem, self.fits[stem.id]))

    def overrides(self) -> list[dict[str, Any]]:
        """Every label the renderer did not trust: keys overridden by ear (in the categories
        the plan asked for, in the kits that play or belong to the backbone's family) and
        one-shots refused by a lane's role check."""
        played = {pick.stem.id for pick in self.picks}
        kits = set(self.scorer.kits) | (set(self.backbone.kits) | self.backbone.family_kits
                                        if self.backbone else set())
        found = []
        for stem_id, hearing in sorted(self.hearings.items()):
            stem = self.stems[stem_id]
            if (not hearing.overridden or stem.category not in self._asked_categories()
                    or stem.kit not in kits):
                continue
            fit = self.fits.get(stem_id)
            action = (f"played, shifted {fit.semitones:+d} st" if stem_id in played else
                      "not chosen" if fit else f"left out: out of reach of {self.plan.key}")
            found.append({"check": "key", "stem_id": stem_id, "kit": stem.kit,
                          "file": stem.rel_path, "label": hearing.label,
                          "played_as": hearing.key, "source": hearing.source,
                          "fit": round(hearing.fit, 3), "reason": hearing.describe(),
                          "action": action})
        for (stem_id, lane_category), reason in sorted(self.role_rejects.items()):
            stem = self.stems[stem_id]
            found.append({"check": "role", "stem_id": stem_id, "kit": stem.kit,
                          "file": stem.rel_path, "label": stem.category,
                          "lane": lane_category, "reason": reason,
                          "action": f"not used as {lane_category}"})
        return found

    def _asked_categories(self) -> set[str]:
        return {c for category in self.asked for c in (category,
                                                       *self.categories[category].stand_ins)}

    def _expand(self, queries: Sequence[StemQuery]) -> list[StemQuery]:
        """Leave out lanes of undefined categories; replace unservable categories that are
        `built_from` others (drum_loop → kick + hihat)."""
        present = {query.category for query in queries}
        result: list[StemQuery] = []
        for query in queries:
            rule = self.categories.get(query.category)
            if rule is None:
                self.fallbacks.setdefault(query.category, f"{query.category}: not a category "
                                                          f"of the rules; lane left out")
                continue
            self.asked.add(query.category)
            parts = rule.built_from
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

    def _stem_for(self, section: int, lane: str, query: StemQuery, used: set[int], *,
                  repeat: bool) -> StemRecord | None:
        """The lane's stem in this section; None leaves it out. Stems already playing in the
        section (`used`) are never doubled: the same loop twice only makes it louder."""
        current = self.current.get(lane)
        self.history.setdefault(lane, set())
        if current is not None:
            if not (repeat and self.categories[query.category].varies):
                return current
            # A variation must serve the query as well as the current stem (a riser stays a
            # riser).
            fresh = self._ranked(query, query.category, exclude=used | self.history[lane])
            if not fresh or overlap(query.tags, self._words(fresh[0].stem)) < overlap(
                    query.tags, self._words(current)):
                return current
            return self._commit(section, lane, query, fresh)
        for category in self._tiers(query.category):
            ranked = self._ranked(query, category, exclude=used)
            if not ranked:
                continue
            if category != query.category:
                self.fallbacks.setdefault(lane, f"{lane}: {self._why_none(query.category, used)}"
                                                f"; used {category}")
            return self._commit(section, lane, query, ranked)
        why = self._why_none(query.category, used)
        stand_ins = [c for c in self._tiers(query.category) if c != query.category]
        if stand_ins:
            why += f", stand-ins ({', '.join(stand_ins)}) already play here"
        self.fallbacks.setdefault(lane, f"{lane}: {why}; lane left out")
        return None

    def _tiers(self, category: str) -> list[str]:
        """The categories that can serve `category`, own first, that have usable stems."""
        stand_ins = self.categories[category].stand_ins
        return [c for c in (category, *stand_ins) if self.by_category.get(c)]

    def _why_none(self, category: str, used: set[int] = frozenset()) -> str:
        if any(s.id in used for s in self.by_category.get(category, [])):
            return f"every usable {category} already plays here"
        if any((s.id, category) in self.role_rejects for s in self.by_category.get(category, [])):
            return f"no {category} whose audio fits the part"
        count = self.library[category]
        if not count:
            return "none in library"
        return f"{count} in library, none within tempo/key range"

    def _words(self, stem: StemRecord) -> set[str]:
        return self.words.setdefault(stem.id, stem_words(stem))

    def _commit(self, section: int, lane: str, query: StemQuery,
                ranked: list[Candidate]) -> StemRecord:
        chosen = ranked[0]
        self.decisions.append(Decision(lane, query.category, section, chosen,
                                       ranked[1] if len(ranked) > 1 else None))
        self.current[lane] = chosen.stem
        self.history[lane].add(chosen.stem.id)
        self.scorer.commit(chosen.stem, self.fits[chosen.stem.id])
        return chosen.stem

    def _ranked(self, query: StemQuery, category: str, *,
                exclude: set[int]) -> list[Candidate]:
        """Candidates of `category` for a lane asking `query`, best first: those of the best
        kit tier, then the best of the next tier (the runner-up when the first has one). A
        stand-in category never brings in a new kit from outside the family: a lane left out
        sounds better than a foreign sound in a borrowed role."""
        pool = [s for s in self.by_category.get(category, []) if s.id not in exclude
                and self._plays_part(s, query.category)]
        tiers: dict[int, list[StemRecord]] = {}
        for stem in pool:
            tier = self._tier(stem.kit)
            if tier is not None and not (category != query.category and tier == OTHER_TIER):
                tiers.setdefault(tier, []).append(stem)
        order = sorted(tiers)
        ranked = [self._rank(query, tier, tiers[tier]) for tier in order[:2]]
        return [*ranked[0], *ranked[1][:1]] if len(ranked) > 1 else (ranked[0] if ranked
                                                                      else [])

    def _rank(self, query: StemQuery, tier: int, stems: list[StemRecord]) -> list[Candidate]:
        scored = [Candidate(stem, tier, self.scorer.score(
            stem, query, words=self._words(stem), fit=self.fits[stem.id],
            role=self._role(stem, query.category).score), self.fits[stem.id].semitones)
            for stem in stems]
        jitter = self.rng.uniform(0.0, JITTER, size=len(scored))
        order = np.argsort([-(c.score.total + j) for c, j in zip(scored, jitter)], kind="stable")
        return [scored[i] for i in order]

    def _tier(self, kit: str) -> int | None:
        """The kit's tier (`daemon.render.backbone.TIERS`); None when opening it would make
        more than `MAX_KITS` kits. Without a backbone every kit is one tier."""
        if self.backbone is None:
            return 0
        used = self.scorer.kits
        if kit not in used and len(used) >= MAX_KITS:
            return None
        return self.backbone.tier(kit, used)

    def _plays_part(self, stem: StemRecord, lane_category: str) -> bool:
        """Whether the stem's audio is plausible for the lane's part; a refusal is kept for
        the report."""
        check = self._role(stem, lane_category)
        if not check.plausible:
            self.role_rejects[(stem.id, lane_category)] = check.reason
        return check.plausible

    def _role(self, stem: StemRecord, lane_category: str) -> RoleCheck:
        key = (stem.id, lane_category)
        if key not in self.roles:
            self.roles[key] = check_role(stem, self.categories[lane_category].shape)
        return self.roles[key]


def _library_counts(stems: Sequence[StemRecord], kits: KitLibrary | None) -> Counter[str]:
    """Stems per category in the library: counted in the kit profiles when there are some,
    since `stems` then holds only the kits a render considers."""
    counts: Counter[str] = Counter()
    if kits is None or not kits.profiles:
        counts.update(stem.category for stem in stems)
        return counts
    for profile in kits.profiles:
        counts.update(profile.categories)
    return counts


def _genre_parts(kits: KitLibrary | None, backbone: Backbone | None) -> dict[str, float]:
    """Kit → its genre criterion: 1 for a kit named in the prompt's family, its confidence
    for an inferred one, 0 for other kits."""
    if kits is None or backbone is None:
        return {}
    parts = {}
    for profile in kits.profiles:
        same = profile.family == backbone.family
        named = profile.family_source in ("name", "folder")
        parts[profile.kit] = (0.0 if not same else 1.0 if named
                              else 0.5 + 0.5 * profile.family_confidence)
    return parts
