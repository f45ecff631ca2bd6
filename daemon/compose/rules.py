"""The arranger's editable rules: ``rules/genres/*.toml`` and ``rules/lexicon.toml``.

`load_rules` reads and validates them into frozen dataclasses. Every defect in every file
(unknown keys, bad ranges, a section with no bars, a mood the lexicon does not define...) is
collected and raised as one `RuleError` whose lines name file and key path. A producer adds a
genre by dropping one TOML file into ``rules/genres/``: its name is the file name and its
``synonyms`` join the lexicon. Other files in ``rules/`` belong to other modules. Both
schemas are documented in the files themselves (``lexicon.toml``, ``genres/techno.toml``).

Words are compared normalised (see `daemon.compose.lexicon`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from daemon.compose.lexicon import Lexicon, MoodEffect, Terms, tokenize
from daemon.compose.plan import MAX_BPM, MIN_BPM, MODES, TONICS
from daemon.errors import RuleError
from daemon.taxonomy import CATEGORIES, TAGS
from daemon.tomlcheck import Checker, read_toml

#: What a template section does; the arranger puts an fx lane (a riser) before each "drop".
ROLES = ("intro", "build", "groove", "drop", "breakdown", "outro")
_NAME = re.compile(r"[a-z][a-z0-9_]*")  # genre, mood and lane names
#: Sections are built from 4-bar phrases; 128 bars (4-5 minutes alone) catches typos.
PHRASE_BARS, MAX_SECTION_BARS = 4, 128

@dataclass(frozen=True)
class Lane:
    """A genre's defaults for one category: tags every query of it carries, stems per query."""

    tags: tuple[str, ...] = ()
    count: int = 1


@dataclass(frozen=True)
class SectionRule:
    """One section of a genre's template.

    `bars` lists the lengths the seed chooses from (multiples of 4). `variation` holds
    ``"+category"`` / ``"-category"`` steps applied in turn to the later parts when the section
    runs longer than 16 bars, so something changes at least every 16 bars. An `optional`
    section is left out of short tracks.
    """

    name: str
    role: str
    bars: tuple[int, ...]
    energy: float
    lanes: tuple[str, ...]
    variation: tuple[str, ...]
    optional_lanes: tuple[str, ...] = ()
    optional: bool = False


@dataclass(frozen=True)
class GenreRules:
    """Everything the arranger knows about one genre (one file in ``rules/genres/``)."""

    name: str
    synonyms: tuple[str, ...]
    bpm_min: float
    bpm_max: float
    bpm_default: float
    four_on_floor: bool
    default_mode: str
    mode_by_mood: Mapping[str, str]
    tonics: tuple[str, ...]
    typical_moods: tuple[str, ...]
    lanes: Mapping[str, Lane]
    moods: Mapping[str, MoodEffect]
    sections: tuple[SectionRule, ...]

    def mode_for(self, moods: Iterable[str]) -> str:
        """The mode of the first mood that names one, else the genre's default mode."""
        return next((self.mode_by_mood[m] for m in moods if m in self.mode_by_mood),
                    self.default_mode)

    def lane(self, category: str) -> Lane:
        return self.lanes.get(category, Lane())


@dataclass(frozen=True)
class Rules:
    genres: Mapping[str, GenreRules]
    lexicon: Lexicon


def load_rules(rules_dir: Path) -> Rules:
    """Read and validate ``genres/*.toml`` and ``lexicon.toml`` under `rules_dir`.

    Raises `RuleError` listing every problem found, each naming its file and key path.
    """
    rules_dir = Path(rules_dir)
    lexicon_path = rules_dir / "lexicon.toml"
    lexicon_check = Checker(lexicon_path)
    vocabulary = _read_vocabulary(lexicon_check, read_toml(lexicon_path, RuleError))
    files = sorted((rules_dir / "genres").glob("*.toml"))
    if not files:
        raise RuleError(f"{rules_dir / 'genres'}: no genre files (*.toml) found")
    checks, genres = [], {}
    for path in files:
        check = Checker(path)
        genres[path.stem] = _read_genre(check, read_toml(path, RuleError), path.stem,
                                        vocabulary.moods)
        checks.append(check)
    words = _genre_words(checks, genres)
    fallback = lexicon_check.text(vocabulary.fallback, "fallback", "genre",
                                  choices=tuple(genres))
    problems = lexicon_check.problems + [p for check in checks for p in check.problems]
    if problems:
        raise RuleError("\n".join(problems))
    return Rules(genres=MappingProxyType(genres),
                 lexicon=_build_lexicon(vocabulary, words, fallback))


# -- lexicon.toml -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Vocabulary:
    words: dict[tuple[str, str], tuple[str, ...]]  # (kind, term) -> words; kind as in Terms
    moods: dict[str, MoodEffect]
    tag_categories: dict[str, tuple[str, ...]]
    fallback: dict[str, Any]


def _read_vocabulary(check: Checker, data: dict[str, Any]) -> _Vocabulary:
    root = check.table(data, "", ("fallback", "moods", "tags", "categories"))
    words: dict[tuple[str, str], tuple[str, ...]] = {}
    moods: dict[str, MoodEffect] = {}
    for name, raw in _named_tables(check, root, "moods").items():
        body = check.table(raw, f"moods.{name}", ("words", "tags", "categories", "energy"))
        words["moods", name] = _words(check, body, f"moods.{name}")
        moods[name] = _effect(check, body, f"moods.{name}")
    tag_categories: dict[str, tuple[str, ...]] = {}
    for name, raw in _named_tables(check, root, "tags", TAGS).items():
        body = check.table(raw, f"tags.{name}", ("words", "categories"))
        words["tags", name] = _words(check, body, f"tags.{name}")
        tag_categories[name] = _members(check, body, f"tags.{name}", "categories", CATEGORIES,
                                        required=True)
    for name in check.table(root.get("categories", {}), "categories", CATEGORIES):
        words["categories", name] = _words(check, root["categories"], "categories", name)
    _check_duplicates(check, words)
    return _Vocabulary(words, moods, tag_categories,
                       check.table(root.get("fallback", {}), "fallback", ("genre",)))


def _named_tables(check: Checker, root: dict, key: str,
                  allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """Sub-tables of ``root[key]``: named from `allowed`, or any lower-case name if None."""
    tables = root.get(key, {})
    if allowed is not None:
        return check.table(tables, key, allowed)
    tables = check.table(tables, key, tables if isinstance(tables, dict) else ())
    for name in tables:
        if not _NAME.fullmatch(name):
            check.problem(f"{key}.{name}", "names must be lower-case words (a-z, 0-9, _)")
    return tables


def _words(check: Checker, data: dict, key: str, name: str = "words", *,
           required: bool = True) -> tuple[str, ...]:
    values = check.strings(data, key, name) if required else check.strings(data, key, name, ())
    for word in values:
        if not tokenize(word):
            check.problem(_join(key, name), f"{word!r} has no letters or digits")
    return tuple(word for word in values if tokenize(word))


def _members(check: Checker, data: dict, key: str, name: str, vocabulary: Iterable[str], *,
             required: bool = False) -> tuple[str, ...]:
    """A list of strings that must all come from `vocabulary`."""
    known = tuple(vocabulary)
    values = check.strings(data, key, name) if required else check.strings(data, key, name, ())
    for value in values:
        if value not in known:
            check.problem(_join(key, name),
                          f"unknown value {value!r} (known: {', '.join(known)})")
    return tuple(value for value in values if value in known)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _effect(check: Checker, body: dict, key: str) -> MoodEffect:
    return MoodEffect(tags=_members(check, body, key, "tags", TAGS),
                      categories=_members(check, body, key, "categories", CATEGORIES),
                      energy=check.number(body, key, "energy", 0.0, low=-0.3, high=0.3))


def _check_duplicates(check: Checker, words: Mapping[tuple[str, str], Iterable[str]]) -> None:
    """A word may mean a mood and a tag, but not two moods (or two tags, two categories)."""
    seen: dict[tuple[str, tuple[str, ...]], str] = {}
    for (kind, term), values in words.items():
        for word in values:
            previous = seen.setdefault((kind, tokenize(word)), term)
            if previous != term:
                check.problem(f"{kind}.{term}", f"{word!r} is already a word of {previous!r}")


def _genre_words(checks: list[Checker], genres: Mapping[str, GenreRules]) -> dict:
    """Genre synonyms (and names) as lexicon words; one phrase may name only one genre."""
    owner: dict[tuple[str, ...], str] = {}
    for check, genre in zip(checks, genres.values()):
        for word in (genre.name.replace("_", " "), *genre.synonyms):
            previous = owner.setdefault(tokenize(word), genre.name)
            if previous != genre.name:
                check.problem("synonyms", f"{word!r} already names genre {previous!r}")
    return {("genres", name): (name.replace("_", " "), *genre.synonyms)
            for name, genre in genres.items()}


def _build_lexicon(vocabulary: _Vocabulary, genre_words: dict, fallback: str) -> Lexicon:
    entries: dict[tuple[str, ...], dict[str, set[str]]] = {}
    plain: dict[tuple[str, ...], dict[str, set[str]]] = {}
    for (kind, term), words in {**vocabulary.words, **genre_words}.items():
        for word in words:
            for table, tokens in ((entries, tokenize(word)), (plain, tokenize(word, plain=True))):
                table.setdefault(tokens, {}).setdefault(kind, set()).add(term)

    def freeze(table: dict) -> Mapping[tuple[str, ...], Terms]:
        return MappingProxyType({key: Terms(**{k: frozenset(v) for k, v in kinds.items()})
                                 for key, kinds in table.items()})

    return Lexicon(entries=freeze(entries), plain=freeze(plain),
                   moods=MappingProxyType(vocabulary.moods),
                   tag_categories=MappingProxyType(vocabulary.tag_categories),
                   fallback_genre=fallback, longest=max(len(key) for key in entries))


# -- genres/*.toml ----------------------------------------------------------------------------
_GENRE_KEYS = ("synonyms", "typical_moods", "four_on_floor", "tempo", "key", "lanes", "moods",
               "sections")
_SECTION_KEYS = ("name", "role", "bars", "energy", "lanes", "optional_lanes", "variation",
                 "optional")


def _read_genre(check: Checker, data: dict[str, Any], name: str,
                moods: Mapping[str, MoodEffect]) -> GenreRules:
    if not _NAME.fullmatch(name):
        check.problem("(file name)", "must be a lower-case genre name (a-z, 0-9, _)")
    root = check.table(data, "", _GENRE_KEYS)
    tempo = check.table(root.get("tempo", {}), "tempo", ("min", "max", "default"))
    bpm = {k: check.number(tempo, "tempo", k, low=MIN_BPM, high=MAX_BPM)
           for k in ("min", "max", "default")}
    if not bpm["min"] <= bpm["default"] <= bpm["max"]:
        check.problem("tempo", "needs min <= default <= max (got "
                      f"{bpm['min']:g}, {bpm['default']:g}, {bpm['max']:g})")
    key = check.table(root.get("key", {}), "key", ("mode", "tonics", "mode_by_mood"))
    by_mood = check.table(key.get("mode_by_mood", {}), "key.mode_by_mood", moods)
    lanes = check.table(root.get("lanes", {}), "lanes", CATEGORIES)
    return GenreRules(
        name=name, synonyms=_words(check, root, "", "synonyms", required=False),
        bpm_min=bpm["min"], bpm_max=bpm["max"], bpm_default=bpm["default"],
        four_on_floor=check.boolean(root, "", "four_on_floor"),
        default_mode=check.text(key, "key", "mode", choices=MODES),
        mode_by_mood=MappingProxyType({m: check.text(by_mood, "key.mode_by_mood", m,
                                                     choices=MODES) for m in by_mood}),
        tonics=_members(check, key, "key", "tonics", TONICS, required=True),
        typical_moods=_members(check, root, "", "typical_moods", moods),
        lanes=MappingProxyType({c: _lane(check, lanes[c], f"lanes.{c}") for c in lanes}),
        moods=MappingProxyType({m: _effect(check, check.table(raw, f"moods.{m}",
                                                              ("tags", "categories", "energy")),
                                           f"moods.{m}")
                                for m, raw in check.table(root.get("moods", {}), "moods",
                                                          moods).items()}),
        sections=_sections(check, root.get("sections")),
    )


def _lane(check: Checker, raw: Any, key: str) -> Lane:
    body = check.table(raw, key, ("tags", "count"))
    return Lane(tags=_members(check, body, key, "tags", TAGS),
                count=check.number(body, key, "count", 1, low=1, high=8, integer=True))


def _sections(check: Checker, raw: Any) -> tuple[SectionRule, ...]:
    if not isinstance(raw, list) or not raw:
        check.problem("sections", "must be a non-empty list of [[sections]] tables")
        return ()
    sections = tuple(_section(check, item, f"sections[{i}]") for i, item in enumerate(raw))
    if all(section.optional for section in sections):
        check.problem("sections", "at least one section must not be optional")
    return sections


def _section(check: Checker, raw: Any, key: str) -> SectionRule:
    body = check.table(raw, key, _SECTION_KEYS)
    lanes = _members(check, body, key, "lanes", CATEGORIES, required=True)
    if not lanes:
        check.problem(f"{key}.lanes", "must name at least one category")
    optional_lanes = _members(check, body, key, "optional_lanes", CATEGORIES)
    for lane in set(lanes) & set(optional_lanes):
        check.problem(f"{key}.optional_lanes", f"{lane!r} is already in lanes")
    return SectionRule(
        name=check.text(body, key, "name") or key,
        role=check.text(body, key, "role", choices=ROLES),
        bars=_bars(check, body.get("bars"), f"{key}.bars"),
        energy=check.number(body, key, "energy", low=0.0, high=1.0),
        lanes=lanes, optional_lanes=optional_lanes,
        variation=_variation(check, body, key, set(lanes), set(optional_lanes)),
        optional=check.boolean(body, key, "optional", False),
    )


def _bars(check: Checker, raw: Any, key: str) -> tuple[int, ...]:
    """`bars` is one length or a list to choose from; each a multiple of 4, 4..128."""
    choices = raw if isinstance(raw, list) else [raw]
    if raw is None or not choices:
        check.problem(key, "a section needs bars (a number, or a list of numbers to choose from)")
        return (PHRASE_BARS,)
    for value in choices:
        if isinstance(value, bool) or not isinstance(value, int) or not (
                PHRASE_BARS <= value <= MAX_SECTION_BARS and value % PHRASE_BARS == 0):
            check.problem(key, f"must be whole multiples of {PHRASE_BARS} from {PHRASE_BARS} to "
                               f"{MAX_SECTION_BARS} (got {value!r})")
            return (PHRASE_BARS,)
    return tuple(choices)


def _variation(check: Checker, body: dict, key: str, lanes: set[str],
               optional_lanes: set[str]) -> tuple[str, ...]:
    """Steps ``+cat`` (a lane neither playing nor optional) or ``-cat`` (a playing lane)."""
    steps = check.strings(body, key, "variation")
    where = f"{key}.variation"
    if not steps:
        check.problem(where, "needs at least one '+category' or '-category' step")
    playing = set(lanes)
    for step in steps:
        sign, category = step[:1], step[1:]
        if sign not in ("+", "-") or category not in CATEGORIES:
            check.problem(where, f"{step!r} must be '+' or '-' followed by a category")
            continue
        adds = sign == "+"
        if (category in playing | optional_lanes) if adds else category not in playing:
            check.problem(where, f"{step!r} does not change the lanes {sorted(playing)}")
            continue
        playing = playing | {category} if adds else playing - {category}
    if steps and not playing:
        check.problem(where, "must leave at least one lane playing")
    return steps
