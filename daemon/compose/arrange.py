"""Intent + rules -> `Plan`: genre, tempo, key, and an arrangement of sections and lanes.

The genre's section template (``rules/genres/*.toml``) is laid out with the seed choosing
section lengths and optional lanes; a requested length is met to the bar by sharing 4-bar
phrases among the sections in proportion (the last section takes any odd bars). Sections
longer than 16 bars are split into parts ("Drop 1 A", "Drop 1 B") that differ by the
section's variation steps, so the lanes change at least every 16 bars; the part before each
drop gets an fx lane for the riser. Every choice comes from the seed: the same intent and
seed give the same plan. Without a seed the prompt text's CRC-32 is used.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from daemon.compose.lexicon import Lexicon, MoodEffect
from daemon.compose.plan import BEATS_PER_BAR, Plan, Section, StemQuery, parse_key
from daemon.compose.prompt import Intent, parse_prompt
from daemon.compose.rules import PHRASE_BARS, GenreRules, Rules, SectionRule
from daemon.errors import PlanError
from daemon.taxonomy import CATEGORIES

#: Longest run of bars without a change in the lanes.
MAX_PART_BARS = 16
#: Requested lengths are capped here (a plan renders in memory).
MAX_LENGTH_SECONDS = 30 * 60.0
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


@dataclass
class _Part:
    """A stretch of at most 16 bars with one set of lanes (mutable while arranging)."""

    name: str
    role: str
    bars: int
    energy: float
    lanes: list[str]
    steps: tuple[str, ...]


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
        Canonical key -> number of library stems in tonal categories
        (`daemon.taxonomy.TONAL_CATEGORIES`); used when the prompt
        names no key. Empty or None: the genre's default mode for the moods, a seeded tonic.

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
                stem_queries=tuple(StemQuery(c, tags[c], genre.lane(c).count) for c in p.lanes))
        for p in parts)
    bars = sum(part.bars for part in parts)
    return Plan(prompt=intent.text, genre=genre.name, bpm=bpm, key=key, seed=seed,
                moods=intent.moods, structure=structure, notes=tuple(notes),
                length_seconds=round(bars * BEATS_PER_BAR * 60.0 / bpm, 3))


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
                   rng: random.Random, notes: list[str]) -> list[_Part]:
    target = _target_bars(intent, bpm, notes)
    sections = _fit_template(genre.sections, target)
    bars = [rng.choice(section.bars) for section in sections]
    if target is not None:
        bars = _scale_bars(bars, target)
    features = [c for c in intent.tags if c in CATEGORIES]
    if features:
        notes.append(f"the prompt names {', '.join(features)}: added to "
                     f"{', '.join(FEATURE_ROLES)} sections")
    shift = _mood_shift(intent.moods, genre, lexicon)
    parts: list[_Part] = []
    for section, length in zip(sections, bars):
        lanes = [*section.lanes, *(c for c in section.optional_lanes if rng.random() < 0.5)]
        if section.role in FEATURE_ROLES:
            lanes += [c for c in features if c not in lanes]
        energy = round(min(1.0, max(0.0, section.energy + shift)), 2)
        parts += _split(section, length, lanes, energy)
    _add_risers(parts)
    _ensure_changes(parts)
    return parts


def _target_bars(intent: Intent, bpm: float, notes: list[str]) -> int | None:
    """The requested length in whole bars (nearest bar to a length in seconds), capped."""
    seconds_per_bar = BEATS_PER_BAR * 60.0 / bpm
    if intent.length_bars is not None:
        bars = max(1, intent.length_bars)
    elif intent.length_seconds is not None:
        bars = max(1, round(intent.length_seconds / seconds_per_bar))
    else:
        return None
    longest = int(MAX_LENGTH_SECONDS // seconds_per_bar)
    if bars > longest:
        notes.append(f"length capped at {MAX_LENGTH_SECONDS / 60:g} minutes ({longest} bars)")
        return longest
    return bars


def _fit_template(sections: Sequence[SectionRule], target: int | None) -> list[SectionRule]:
    """Leave sections out while the track is too short for them, the most expendable first.

    Too short: some section could not get a 4-bar phrase, or, while optional sections are
    left, the template's shortest form would shrink below half, squeezing every section into
    a stub. Optional sections go first, then builds, grooves and breakdowns, then the intro,
    then the outro; the first drop stays. Later sections go before earlier ones.
    """
    chosen = list(sections)
    while target is not None and len(chosen) > 1 and (
            PHRASE_BARS * len(chosen) > target
            or any(s.optional for s in chosen) and sum(min(s.bars) for s in chosen) > 2 * target):
        first_drop = next((i for i, s in enumerate(chosen) if s.role == "drop"), None)
        del chosen[max(range(len(chosen)), key=lambda i: (
            chosen[i].optional, i != first_drop, chosen[i].role not in ("intro", "outro"),
            chosen[i].role == "intro", i))]
    return chosen


def _scale_bars(bars: Sequence[int], target: int) -> list[int]:
    """Share ``target // 4`` phrases among sections in proportion to `bars` (largest
    remainder, at least one each); the last section also takes ``target % 4`` bars."""
    phrases, extra = divmod(target, PHRASE_BARS)
    quotas = [phrases * b / sum(bars) for b in bars]
    shares = [max(1, int(q)) for q in quotas]
    by_remainder = sorted(range(len(bars)), key=lambda i: (int(quotas[i]) - quotas[i], i))
    for step in range(phrases - sum(shares)):
        shares[by_remainder[step % len(bars)]] += 1
    while sum(shares) > phrases:  # minimum phrases overshot: take from the longest sections
        shares[max(range(len(bars)), key=lambda i: (shares[i], -i))] -= 1
    lengths = [PHRASE_BARS * share for share in shares]
    lengths[-1] += extra
    return lengths


def _split(section: SectionRule, bars: int, lanes: list[str], energy: float) -> list[_Part]:
    sizes = _part_sizes(bars)
    if len(sizes) == 1:
        return [_Part(section.name, section.role, bars, energy, lanes, section.variation)]
    return [_Part(f"{section.name} {_letter(i)}", section.role, size, energy,
                  _vary(lanes, section.variation, i), section.variation)
            for i, size in enumerate(sizes)]


def _part_sizes(bars: int) -> list[int]:
    """Parts of at most 16 bars in 8-bar blocks where possible: 24 -> 16 + 8,
    20 -> 8 + 12, 18 -> 8 + 10 (only the last part holds bars beyond 4-bar phrases)."""
    count = -(-bars // MAX_PART_BARS)
    if count == 1:
        return [bars]
    phrases, extra = divmod(bars, PHRASE_BARS)
    blocks, odd = divmod(phrases, 2)
    base, more = divmod(blocks, count)
    sizes = [2 * PHRASE_BARS * (base + (i < more)) for i in range(count)]
    sizes[-1] += PHRASE_BARS * odd + extra
    return sizes


def _letter(index: int) -> str:
    """Spreadsheet-style part labels: A..Z, AA, AB..."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def _vary(lanes: list[str], steps: Sequence[str], index: int) -> list[str]:
    """Lanes of part `index`: its first `index` steps applied; past the last step, the last
    step toggles, so neighbouring parts still differ."""
    applied = index if index <= len(steps) else len(steps) - (index - len(steps)) % 2
    for step in steps[:applied]:
        lanes = _apply(lanes, step)
    return lanes


def _apply(lanes: list[str], step: str) -> list[str]:
    category = step[1:]
    if step[0] == "+":
        return lanes if category in lanes else [*lanes, category]
    return [lane for lane in lanes if lane != category]


def _add_risers(parts: list[_Part]) -> None:
    """An fx lane (the renderer's riser) in the last part before each drop."""
    for before, part in zip(parts, parts[1:]):
        if part.role == "drop" and before.role != "drop" and "fx" not in before.lanes:
            before.lanes = [*before.lanes, "fx"]


def _ensure_changes(parts: list[_Part]) -> None:
    """Where two neighbours play the same lanes, vary the second by one of its section's
    steps, or by undoing one (its part may have taken them all already).

    Removing fx is never tried: that lane may carry the riser before a drop.
    """
    for before, part in zip(parts, parts[1:]):
        if set(part.lanes) != set(before.lanes):
            continue
        undo = tuple({"+": "-", "-": "+"}[step[0]] + step[1:] for step in part.steps)
        for step in (*part.steps, *undo):
            varied = _apply(part.lanes, step)
            if step != "-fx" and set(varied) != set(before.lanes):
                part.lanes = varied
                break


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
