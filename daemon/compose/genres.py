"""One genre file (``rules/genres/NAME.toml``): its schema, read and validated into `GenreRules`.

`read_genre` records every defect on the file's `Checker` (file and key path) and returns what
it could read; `daemon.compose.rules.load_rules` raises them all together. The schema is
documented for producers at the top of ``rules/genres/techno.toml``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from daemon.compose.checks import NAME, members, mood_effect, word_list
from daemon.compose.lexicon import MoodEffect
from daemon.compose.plan import MAX_BPM, MIN_BPM
from daemon.keys import MODES, TONICS
from daemon.taxonomy import CATEGORIES, TAGS
from daemon.tomlcheck import Checker

#: What a template section does; the arranger puts an fx lane (a riser) before each "drop".
ROLES = ("intro", "build", "groove", "drop", "breakdown", "outro")
#: Sections lie on a grid of 4-bar phrases; 128 bars (4-5 minutes alone) catches typos.
GRID_BARS, MAX_SECTION_BARS = 4, 128
#: DJ edges are whole 8-bar phrases and at most one part (16 bars: the lanes change then).
EDGE_STEP_BARS, MAX_EDGE_BARS = 8, 16

_GENRE_KEYS = ("synonyms", "family", "typical_moods", "four_on_floor", "fills", "tempo", "key",
               "lanes", "moods", "edges", "sections")
_SECTION_KEYS = ("name", "role", "bars", "energy", "lanes", "optional_lanes", "variation",
                 "optional")
_EDGE_KEYS = ("intro_bars", "outro_bars", "lanes")


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
class Edges:
    """DJ-friendly edges of a club genre: the first `intro_bars` and the last `outro_bars`
    bars of a track play only `lanes`, so a DJ can mix in and out on whole phrases. They are
    meant to be drums (kick and hats); what a category is lives in ``categories.toml``,
    which genre files are not validated against, so the shipped files are tested for it.

    The template's first section is its intro and its last its outro, each at least as long
    as its edge (validated); the edge is the start of the intro and the end of the outro.
    """

    intro_bars: int
    outro_bars: int
    lanes: tuple[str, ...]


@dataclass(frozen=True)
class GenreRules:
    """Everything the arranger knows about one genre (one file in ``rules/genres/``).

    `four_on_floor`: a kick on every beat, which the renderer checks leads the groove.
    `fills`: the last bar of every 8-bar phrase plays the genre's fill (``patterns.toml``).
    `edges`: DJ-friendly intro and outro, or None. `family`: the genre family its kits belong
    to (house for deep house), a genre whose own family is itself (checked by `load_rules`).
    """

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
    fills: bool = False
    edges: Edges | None = None
    family: str = ""

    def mode_for(self, moods: Iterable[str]) -> str:
        """The mode of the first mood that names one, else the genre's default mode."""
        return next((self.mode_by_mood[m] for m in moods if m in self.mode_by_mood),
                    self.default_mode)

    def lane(self, category: str) -> Lane:
        return self.lanes.get(category, Lane())


def read_genre(check: Checker, data: dict[str, Any], name: str,
               moods: Mapping[str, MoodEffect]) -> GenreRules:
    """Validate one genre file's parsed TOML; `moods` are the lexicon's (known mood names)."""
    if not NAME.fullmatch(name):
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
    sections = _sections(check, root.get("sections"))
    return GenreRules(
        name=name, synonyms=word_list(check, root, "", "synonyms", required=False),
        bpm_min=bpm["min"], bpm_max=bpm["max"], bpm_default=bpm["default"],
        four_on_floor=check.boolean(root, "", "four_on_floor"),
        default_mode=check.text(key, "key", "mode", choices=MODES),
        mode_by_mood=MappingProxyType({m: check.text(by_mood, "key.mode_by_mood", m,
                                                     choices=MODES) for m in by_mood}),
        tonics=members(check, key, "key", "tonics", TONICS, required=True),
        typical_moods=members(check, root, "", "typical_moods", moods),
        lanes=MappingProxyType({c: _lane(check, lanes[c], f"lanes.{c}") for c in lanes}),
        moods=MappingProxyType({m: mood_effect(check, check.table(
            raw, f"moods.{m}", ("tags", "categories", "energy")), f"moods.{m}")
            for m, raw in check.table(root.get("moods", {}), "moods", moods).items()}),
        sections=sections,
        fills=check.boolean(root, "", "fills", False),
        edges=_edges(check, root["edges"], sections) if "edges" in root else None,
        family=check.text(root, "", "family", name),
    )


def _lane(check: Checker, raw: Any, key: str) -> Lane:
    body = check.table(raw, key, ("tags", "count"))
    return Lane(tags=members(check, body, key, "tags", TAGS),
                count=check.number(body, key, "count", 1, low=1, high=8, integer=True))


def _edges(check: Checker, raw: Any, sections: tuple[SectionRule, ...]) -> Edges | None:
    """The ``[edges]`` table; the template must open with an intro and close with an outro
    that always hold their edge."""
    body = check.table(raw, "edges", _EDGE_KEYS)
    lanes = members(check, body, "edges", "lanes", CATEGORIES, required=True)
    if not lanes:
        check.problem("edges.lanes", "must name at least one category")
    edges = Edges(intro_bars=_edge_bars(check, body, "intro_bars"),
                  outro_bars=_edge_bars(check, body, "outro_bars"), lanes=lanes)
    for index, role, bars in ((0, "intro", edges.intro_bars),
                              (len(sections) - 1, "outro", edges.outro_bars)):
        section = sections[index] if sections else None
        if section is None or section.role != role or section.optional:
            check.problem("edges", f"needs a template whose {'first' if index == 0 else 'last'}"
                                   f" section is a non-optional {role}")
        elif min(section.bars) < bars:
            check.problem(f"sections[{index}].bars", f"the {role} must hold its {bars}-bar "
                                                     f"DJ edge (got {min(section.bars)})")
    return edges


def _edge_bars(check: Checker, body: dict, name: str) -> int:
    bars = check.number(body, "edges", name, low=EDGE_STEP_BARS, high=MAX_EDGE_BARS,
                        integer=True)
    if bars % EDGE_STEP_BARS:
        check.problem(f"edges.{name}", f"must be a multiple of {EDGE_STEP_BARS} (got {bars})")
    return bars


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
    lanes = members(check, body, key, "lanes", CATEGORIES, required=True)
    if not lanes:
        check.problem(f"{key}.lanes", "must name at least one category")
    optional_lanes = members(check, body, key, "optional_lanes", CATEGORIES)
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
        return (GRID_BARS,)
    for value in choices:
        if isinstance(value, bool) or not isinstance(value, int) or not (
                GRID_BARS <= value <= MAX_SECTION_BARS and value % GRID_BARS == 0):
            check.problem(key, f"must be whole multiples of {GRID_BARS} from {GRID_BARS} to "
                               f"{MAX_SECTION_BARS} (got {value!r})")
            return (GRID_BARS,)
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
