"""Intent + rules -> `Plan`: genre, tempo, key, and an arrangement of sections and lanes.

The genre's section template (``rules/genres/*.toml``) is laid out with the seed choosing
section lengths and optional lanes; a requested length is met to the nearest 8-bar phrase and
its phrases shared among the sections (`daemon.compose.phrases`). Sections are split into
parts of at most 16 bars, a club genre's intro and outro get DJ edges of drums only, and
later drops are made to differ from earlier ones (`daemon.compose.parts`). A section plays
the step-pattern variation of its role's occurrence (a second drop plays variation 1) and,
in genres with fills, fills at its phrase ends. Every choice comes from the seed: the same
intent and seed give the same plan. Without a seed the prompt text's CRC-32 is used.
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from daemon.compose.genres import Edges, GenreRules
from daemon.compose.lexicon import Lexicon, MoodEffect
from daemon.compose.parts import Part, finish_parts, split_section
from daemon.compose.phrases import PHRASE_BARS, fit_template, share_phrases, target_bars
from daemon.compose.plan import BEATS_PER_BAR, Plan, Section, StemQuery
from daemon.compose.prompt import Intent, parse_prompt
from daemon.compose.rules import Rules
from daemon.errors import PlanError
from daemon.keys import parse_key
from daemon.taxonomy import CATEGORIES

#: The library key in the mood's mode is preferred while it has at least this share of the
#: stems of the library's most common key; below that the library's own key serves better.
MODE_SHARE = 0.5
#: All moods together move section energies by at most this much, so the curve keeps its shape.
MAX_MOOD_SHIFT = 0.3
#: Roles whose sections get the categories a prompt names ("with vocals", "mit Fläche").
FEATURE_ROLES = ("groove", "drop", "breakdown")
#: Guessing a genre: a shared typical mood earns 2 points, each bpm off the genre's default
#: tempo costs 0.1 (one mood outweighs 20 bpm), a tempo outside its range costs 20.
_MOOD_POINTS, _BPM_POINTS, _OUT_OF_RANGE = 2.0, 0.1, 20.0


def plan_prompt(text: str, rules: Rules, *, seed: int | None = None,
                key_counts: Mapping[str, int] | None = None) -> Plan:
    """Parse `text` and arrange it; see `arrange`."""
    return arrange(parse_prompt(text, rules.lexicon), rules, seed=seed, key_counts=key_counts)


def arrange(intent: Intent, rules: Rules, *, seed: int | None = None,
            key_counts: Mapping[str, int] | None = None) -> Plan:
    """Turn `intent` into a plan.

    Parameters
    ----------
    intent : Intent
        From `parse_prompt`; its notes open the plan's notes.
    rules : Rules
        Genres and lexicon from `load_rules`.
    seed : int, optional
        Overrides the intent's seed; with neither, the CRC-32 of the prompt text.
    key_counts : mapping, optional
        Canonical key -> number of library stems in tonal categories (``tonal = true`` in
        rules/categories.toml); used when the prompt names no key. Empty or None: the
        genre's default mode for the moods, a seeded tonic.

    Raises
    ------
    PlanError
        The intent names a genre the rules do not know, or `key_counts` holds a bad key.
    """
    notes = list(intent.notes)
    seed = _choose_seed(intent, seed, notes)
    genre = _choose_genre(intent, rules, notes)
    bpm = intent.bpm if intent.bpm is not None else genre.bpm_default
    key = intent.key or _choose_key(genre, intent.moods, key_counts,
                                    random.Random(f"{seed}/key"), notes)
    parts = _arrange_parts(intent, genre, rules.lexicon, bpm, random.Random(f"{seed}/form"),
                           notes)
    tags = {c: _lane_tags(c, intent, genre, rules.lexicon) for c in CATEGORIES}
    structure = tuple(
        Section(section=p.name, bars=p.bars, energy=p.energy,
                stem_queries=tuple(StemQuery(c, tags[c], genre.lane(c).count) for c in p.lanes),
                variation=p.variation,
                fills=genre.fills and not p.edge)
        for p in parts)
    bars = sum(part.bars for part in parts)
    return Plan(prompt=intent.text, genre=genre.name, bpm=bpm, key=key, seed=seed,
                moods=intent.moods, structure=structure, notes=tuple(notes),
                length_seconds=round(bars * BEATS_PER_BAR * 60.0 / bpm, 3),
                four_on_floor=genre.four_on_floor)


def fallback_genre(rules: Rules, *, bpm: float | None, moods: Sequence[str]) -> GenreRules:
    """The genre that best fits a tempo and moods when the prompt names none.

    Shared typical moods count for a genre, distance from its default tempo against it, a
    tempo outside its range heavily. Ties go to the lexicon's fallback genre, then by name.
    """
    def score(genre: GenreRules) -> float:
        points = _MOOD_POINTS * len(set(moods) & set(genre.typical_moods))
        if bpm is not None:
            points -= _BPM_POINTS * abs(bpm - genre.bpm_default)
            points -= 0.0 if genre.bpm_min <= bpm <= genre.bpm_max else _OUT_OF_RANGE
        return points

    return min(rules.genres.values(), key=lambda g: (
        -score(g), g.name != rules.lexicon.fallback_genre, g.name))


def _choose_seed(intent: Intent, seed: int | None, notes: list[str]) -> int:
    if seed is not None:
        if intent.seed is not None and intent.seed != seed:
            notes.append(f"seed {seed} given with the request overrides seed {intent.seed} "
                         "in the prompt")
        return seed
    if intent.seed is not None:
        return intent.seed
    derived = zlib.crc32(intent.text.encode("utf-8"))
    notes.append(f"seed {derived} derived from the prompt text")
    return derived


def _choose_genre(intent: Intent, rules: Rules, notes: list[str]) -> GenreRules:
    if intent.genre is not None:
        if intent.genre not in rules.genres:
            raise PlanError(f"intent.genre: unknown genre {intent.genre!r} "
                            f"(known: {', '.join(sorted(rules.genres))})")
        return rules.genres[intent.genre]
    genre = fallback_genre(rules, bpm=intent.bpm, moods=intent.moods)
    reasons = ([f"tempo {intent.bpm:g} bpm"] if intent.bpm is not None else []) + (
        [f"moods {', '.join(intent.moods)}"] if intent.moods else [])
    notes.append(f"no genre named: chose {genre.name} from "
                 f"{' and '.join(reasons) or 'nothing (the default genre)'}")
    return genre


def _choose_key(genre: GenreRules, moods: Sequence[str], key_counts: Mapping[str, int] | None,
                rng: random.Random, notes: list[str]) -> str:
    """The library's most common key (in the mood's mode if served well), else a default."""
    mode = genre.mode_for(moods)
    counts = {key: n for key, n in (key_counts or {}).items() if n > 0}
    if not counts:
        key = f"{rng.choice(genre.tonics)} {mode}"
        notes.append(f"no key named and no tonal stems in the library: chose {key}, a "
                     f"{genre.name} default for {'the moods' if moods else 'the genre'}")
        return key
    in_mode = {key: n for key, n in counts.items() if parse_key(key, where="key_counts")[1] == mode}
    served = in_mode and max(in_mode.values()) >= MODE_SHARE * max(counts.values())
    pool = in_mode if served else counts
    best = max(pool.values())
    key = rng.choice(sorted(key for key, n in pool.items() if n == best))
    kind = f"most common {mode} key" if served else "most common key"
    notes.append(f"no key named: chose {key}, the library's {kind} among tonal stems "
                 f"({best} stems)")
    return key


def _arrange_parts(intent: Intent, genre: GenreRules, lexicon: Lexicon, bpm: float,
                   rng: random.Random, notes: list[str]) -> list[Part]:
    target = target_bars(intent, bpm, notes)
    edges = _edges_for(genre, target, notes)
    minimum = {"intro": edges.intro_bars, "outro": edges.outro_bars} if edges else {}
    sections = fit_template(genre.sections, target, minimum=minimum)
    bars = [rng.choice(section.bars) for section in sections]
    if target is not None:
        bars = share_phrases(bars, target, minimum=[minimum.get(s.role, PHRASE_BARS)
                                                     for s in sections])
    features = [c for c in intent.tags if c in CATEGORIES]
    if features:
        notes.append(f"the prompt names {', '.join(features)}: added to "
                     f"{', '.join(FEATURE_ROLES)} sections")
    shift = _mood_shift(intent.moods, genre, lexicon)
    parts: list[Part] = []
    occurrences: Counter[str] = Counter()
    for index, (section, length) in enumerate(zip(sections, bars)):
        lanes = [*section.lanes, *(c for c in section.optional_lanes if rng.random() < 0.5)]
        if section.role in FEATURE_ROLES:
            lanes += [c for c in features if c not in lanes]
        energy = round(min(1.0, max(0.0, section.energy + shift)), 2)
        head = minimum.get("intro", 0) if index == 0 and section.role == "intro" else 0
        tail = minimum.get("outro", 0) if index == len(sections) - 1 and \
            section.role == "outro" else 0
        parts += split_section(section, length, lanes, energy,
                               variation=occurrences[section.role], head=head, tail=tail,
                               edge_lanes=edges.lanes if edges else ())
        occurrences[section.role] += 1
    finish_parts(parts)
    return parts


def _edges_for(genre: GenreRules, target: int | None, notes: list[str]) -> Edges | None:
    """The genre's DJ edges, unless a requested length is too short for them: together they
    may fill at most half the track."""
    edges = genre.edges
    if edges is None or target is None or target >= 2 * (edges.intro_bars + edges.outro_bars):
        return edges
    notes.append(f"{target} bars are too short for the {edges.intro_bars}-bar DJ intro and "
                 f"{edges.outro_bars}-bar DJ outro: left out")
    return None


def _effect(mood: str, genre: GenreRules, lexicon: Lexicon) -> MoodEffect | None:
    return genre.moods.get(mood) or lexicon.moods.get(mood)


def _mood_shift(moods: Iterable[str], genre: GenreRules, lexicon: Lexicon) -> float:
    total = sum(effect.energy for mood in moods if (effect := _effect(mood, genre, lexicon)))
    return max(-MAX_MOOD_SHIFT, min(MAX_MOOD_SHIFT, total))


def _lane_tags(category: str, intent: Intent, genre: GenreRules,
               lexicon: Lexicon) -> tuple[str, ...]:
    """Tags a lane asks for: the genre's, the moods' and those the prompt names itself."""
    tags = list(genre.lane(category).tags)
    for mood in intent.moods:
        effect = _effect(mood, genre, lexicon)
        if effect and category in effect.categories:
            tags += effect.tags
    tags += [t for t in intent.tags if category in lexicon.tag_categories.get(t, ())]
    return tuple(dict.fromkeys(tags))
