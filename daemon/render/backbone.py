"""The backbone: the one kit (at most two) a track is built from.

Producers build a track from one construction kit and borrow a sound or two; a track drawn
from eight kits sounds like none of them. Before any stem is chosen, every kit's profile is
scored against the plan (`WEIGHTS`): its genre family (named kits count fully, inferred ones
by their confidence), its style words against the prompt's moods, the stretch its tempo needs,
how well its keys fit the plan's key, and whether it can serve the plan's core lanes (drums,
bass, one tonal lane). The best kit is the backbone; when it cannot serve a core lane, the best
kit that can becomes the second. Selection then takes lanes from the backbone first
(`Backbone.tier`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import islice

from daemon.categories import CategoryTable
from daemon.compose.plan import Plan
from daemon.errors import PlanError
from daemon.keys import key_fit
from daemon.kits.family import KitLibrary
from daemon.kits.profile import KitProfile

WEIGHTS: Mapping[str, float] = {"family": 3.0, "lanes": 2.0, "tempo": 1.5, "key": 1.0,
                                "moods": 0.5}
TEMPO_READINGS = (1.0, 0.5, 2.0)
OFF_TEMPO_PENALTY = 0.9  # a half- or double-time kit fits, less naturally
DRUM_CATEGORIES = ("kick", "drum_loop")
MAX_BACKBONES = 2
#: Kits a render considers per category, best fitting first, besides the backbone. A track
#: draws on at most three kits (`daemon.render.select.MAX_KITS`), the best of them by this
#: same ranking, so a library with thousands of kits is not read whole for one track; one
#: with fewer kits of a category than this is searched whole.
CANDIDATE_KITS = 32
#: Selection tiers, best first: the backbone, used kits of the family, other kits of the
#: family, other used kits, any other kit.
TIERS = ("backbone", "family, used", "family", "used", "other")


@dataclass(frozen=True)
class KitFit:
    """One kit scored for a plan: the weighted `parts` and the core lanes it `covers`."""

    kit: str
    family: str | None
    score: float
    parts: Mapping[str, float]
    covers: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"kit": self.kit, "family": self.family, "score": round(self.score, 3),
                "parts": {name: round(value, 3) for name, value in self.parts.items()},
                "covers": list(self.covers)}


@dataclass(frozen=True)
class Backbone:
    """The backbone kits of a render, the prompt's family and its kits, and why."""

    kits: tuple[str, ...]
    family: str
    family_kits: frozenset[str]
    ranking: tuple[KitFit, ...]
    notes: tuple[str, ...]

    def tier(self, kit: str, used: Collection[str]) -> int:
        """The kit's place in `TIERS` (0 is tried first)."""
        if kit in self.kits:
            return 0
        if kit in self.family_kits:
            return 1 if kit in used else 2
        return 3 if kit in used else 4

    def as_dict(self) -> dict:
        return {"kits": list(self.kits), "family": self.family,
                "family_kits": sorted(self.family_kits),
                "ranking": [fit.as_dict() for fit in self.ranking[:5]],
                "notes": list(self.notes)}


def choose_backbone(plan: Plan, library: KitLibrary, *, categories: CategoryTable,
                    max_stretch: float, max_semitones: int) -> Backbone | None:
    """Score every kit with stems for `plan` and choose the backbone (see the module
    docstring); None for a library without profiled kits."""
    profiles = [profile for profile in library.profiles if profile.stems]
    if not profiles:
        return None
    family = library.family_of(plan.genre)
    wants = _Wants.of(plan, categories, max_semitones=max_semitones)
    ranking = sorted((fit_kit(profile, plan, family=family, wants=wants,
                              max_stretch=max_stretch) for profile in profiles),
                     key=lambda fit: (-fit.score, fit.kit))
    best = ranking[0]
    kits, notes = [best.kit], [_reason(best, family)]
    missing = [need for need in wants.needs if need not in best.covers]
    helper = next((fit for fit in ranking[1:] if set(missing) & set(fit.covers)), None)
    if missing and helper is not None and len(kits) < MAX_BACKBONES:
        kits.append(helper.kit)
        notes.append(f"second backbone {helper.kit}: {best.kit} has no "
                     f"{' or '.join(need for need in missing if need in helper.covers)}")
    family_kits = frozenset(p.kit for p in profiles if p.family == family)
    if not family_kits:
        notes.insert(0, f"no kit of the {family} family in the library; the closest kit, "
                        f"{best.kit} ({best.family or 'no family'}), serves")
    return Backbone(tuple(kits), family, family_kits, tuple(ranking), tuple(notes))


def wanted_categories(plan: Plan, categories: CategoryTable) -> set[str]:
    """Every category a render of `plan` may play: those it asks for, their stand-ins and
    the one-shot categories that rebuild them, and those parts' stand-ins."""
    wanted = _asked(plan, categories)
    for category in list(wanted):
        wanted.update(categories[category].stand_ins)
        for part in categories[category].built_from:
            wanted.update((part, *categories[part].stand_ins))
    return wanted


def candidate_kits(backbone: Backbone, library: KitLibrary, wanted: Collection[str], *,
                   limit: int = CANDIDATE_KITS) -> tuple[str, ...]:
    """The backbone kits, then for each category of `wanted` the `limit` kits of the
    backbone's ranking that best fit the plan and have stems of it; each kit once."""
    has = {profile.kit: profile.categories for profile in library.profiles}
    chosen = dict.fromkeys(backbone.kits)
    for category in sorted(wanted):
        with_it = (fit.kit for fit in backbone.ranking if has[fit.kit].get(category))
        chosen.update(dict.fromkeys(islice(with_it, limit)))
    return tuple(chosen)


@dataclass(frozen=True)
class _Wants:
    """What a plan asks of every kit, worked out once per plan: its core lanes (``drums``,
    ``bass``, ``tonal``: another tonal lane, each at most once) with the categories that
    serve each, and how well each key fits the plan's key within the shift limit."""

    needs: tuple[str, ...]
    serving: Mapping[str, frozenset[str]]
    key_fits: Mapping[str, float]
    plan_key: str
    max_semitones: int

    @classmethod
    def of(cls, plan: Plan, categories: CategoryTable, *, max_semitones: int) -> _Wants:
        asked = _asked(plan, categories)
        tonal = {c for c in asked - {"bass"} if categories[c].tonal}
        serving = {"drums": frozenset(DRUM_CATEGORIES),
                   "bass": frozenset({"bass", *categories["bass"].stand_ins}),
                   "tonal": frozenset(tonal.union(*(categories[c].stand_ins for c in tonal)))}
        needs = tuple(need for need, wanted in (("drums", asked & set(DRUM_CATEGORIES)),
                                                ("bass", asked & {"bass"}), ("tonal", tonal))
                      if wanted)
        return cls(needs, serving, {}, plan.key, max_semitones)

    def key_fit(self, key: str) -> float | None:
        """How well a stem in `key` fits once shifted (0 beyond the limit); None for a key
        that is not canonical."""
        if key not in self.key_fits:
            try:
                shift, fit = key_fit(key, self.plan_key)
            except PlanError:
                fit = None
            else:
                fit = fit if abs(shift) <= self.max_semitones else 0.0
            self.key_fits[key] = fit
        return self.key_fits[key]


def fit_kit(profile: KitProfile, plan: Plan, *, family: str, wants: _Wants,
            max_stretch: float) -> KitFit:
    """Score one kit for the plan (parts 0..1, weighted by `WEIGHTS`)."""
    has = {category for category, count in profile.categories.items() if count}
    covers = tuple(need for need in wants.needs if has & wants.serving[need])
    parts = {
        "family": _family_part(profile, family),
        "lanes": len(covers) / len(wants.needs) if wants.needs else 1.0,
        "tempo": _tempo_part(profile.tempo, plan.bpm, max_stretch),
        "key": _key_part(profile.keys, wants),
        "moods": (len(set(plan.moods) & set(profile.styles)) / len(plan.moods)
                  if plan.moods else 0.0),
    }
    score = sum(WEIGHTS[name] * value for name, value in parts.items())
    return KitFit(profile.kit, profile.family, score, parts, covers)


def _asked(plan: Plan, categories: CategoryTable) -> set[str]:
    return {query.category for section in plan.structure for query in section.stem_queries
            if query.category in categories}


def _family_part(profile: KitProfile, family: str) -> float:
    if profile.family != family:
        return 0.0
    # A family read from the kit's name is certain; an inferred one counts by its confidence.
    return 1.0 if profile.family_source in ("name", "folder") else (
        0.5 + 0.5 * profile.family_confidence)


def _tempo_part(tempo: float | None, bpm: float, max_stretch: float) -> float:
    if tempo is None:
        return 0.5  # one-shots only: any tempo
    best = 0.0
    for reading in TEMPO_READINGS:
        stretch = abs(1.0 - bpm / (tempo * reading))
        if stretch <= max_stretch:
            fit = 1.0 - stretch / max_stretch if max_stretch else 1.0
            best = max(best, fit * (1.0 if reading == 1.0 else OFF_TEMPO_PENALTY))
    return best


def _key_part(keys: tuple[tuple[str, int], ...], wants: _Wants) -> float:
    total = sum(count for _, count in keys)
    if not total:
        return 0.5  # no tonal stems: no key to clash
    score = 0.0
    for key, count in keys:
        fit = wants.key_fit(key)
        score += count * fit if fit is not None else 0.0
    return score / total


def _reason(fit: KitFit, family: str) -> str:
    parts = ", ".join(f"{name} {value:.2f}" for name, value in fit.parts.items())
    same = "of the family" if fit.family == family else f"family {fit.family or 'unknown'}"
    return f"backbone {fit.kit} ({same}; {parts})"
