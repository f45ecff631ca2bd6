"""Step patterns for one-shots (``rules/patterns.toml``): loaded, validated, looked up by genre.

A pattern is a string of steps, 16 per bar, one character each (spaces ignored): ``X`` accent,
``x`` normal hit, ``o`` ghost note, ``.`` rest. A genre may also give a one-bar fill per
instrument (played on phrase ends when the plan asks for fills), variations (alternative
patterns a repeated section plays, so drop 2 sounds unlike drop 1) and level trims (quieter
instruments, for patterns that fight the kick). Every defect in the file is reported at once
in one `RuleError` naming file and key (``patterns.toml: techno.kick: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.errors import RuleError
from daemon.taxonomy import PATTERN_INSTRUMENTS
from daemon.tomlcheck import Checker, read_toml

STEPS_PER_BAR = 16
#: Step character → velocity (0..1). Ghost notes sit at 0.45 so quiet sections can drop them.
VELOCITIES = {"X": 1.0, "x": 0.75, "o": 0.45, ".": 0.0}
DEFAULT_GENRE = "default"
MAX_SWING = 0.5  # half a sixteenth: beyond this the off-step would pass the next step's midpoint
FILE_NAME = "patterns.toml"
#: Fills fall on the last bar of every phrase of this many bars, and of every section.
FILL_PHRASE_BARS = 8
#: Level trims only make an instrument quieter, by at most this much (dB).
MIN_LEVEL_DB = -24.0
_EXTRAS = ("swing", "fill", "variations", "level_db")

Steps = tuple[float, ...]


@dataclass(frozen=True)
class GenrePattern:
    """The drum machine of one genre: per instrument a velocity per step, and the swing.

    `fill`: one bar per instrument it names, played instead of the pattern on phrase ends.
    `variations`: alternative patterns for the instruments each names; a section of plan
    variation n >= 1 plays ``variations[(n - 1) % len(variations)]``. `level_db`: per
    instrument a trim (<= 0 dB) under its lane's staging.
    """

    genre: str
    steps: Mapping[str, Steps]
    swing: float
    fill: Mapping[str, Steps] = field(default_factory=dict)
    variations: tuple[Mapping[str, Steps], ...] = ()
    level_db: Mapping[str, float] = field(default_factory=dict)

    def bars(self, instrument: str) -> int:
        """Length of the instrument's pattern in bars."""
        return len(self.steps[instrument]) // STEPS_PER_BAR

    def bar_steps(self, instrument: str, bar: int, *, variation: int = 0,
                  fill: bool = False) -> Steps:
        """The 16 velocities `instrument` plays in bar `bar` (from 0) of a section: the fill
        where `fill` and the fill names the instrument, else bar ``bar mod length`` of the
        pattern of plan variation `variation` (0: the genre's own)."""
        if fill and instrument in self.fill:
            return self.fill[instrument]
        steps = self.steps[instrument]
        if variation > 0 and self.variations:
            steps = self.variations[(variation - 1) % len(self.variations)].get(instrument,
                                                                                steps)
        start = bar % (len(steps) // STEPS_PER_BAR) * STEPS_PER_BAR
        return steps[start:start + STEPS_PER_BAR]

    def level(self, instrument: str) -> float:
        """The instrument's level trim in dB (0 unless the genre sets one)."""
        return self.level_db.get(instrument, 0.0)


def is_fill_bar(bar: int, bars: int) -> bool:
    """Whether bar `bar` (from 0) of a section of `bars` bars ends a phrase and so takes the
    fill: the last bar of every 8, and the section's last bar (it leads into the next)."""
    return (bar + 1) % FILL_PHRASE_BARS == 0 or bar == bars - 1


@dataclass(frozen=True)
class PatternRules:
    """All genres of ``patterns.toml``; `DEFAULT_GENRE` fills every gap."""

    genres: Mapping[str, GenrePattern]

    def for_genre(self, genre: str) -> GenrePattern:
        """The genre's patterns, with instruments it leaves out (patterns and level trims)
        taken from the default; its fill and its variations are its own when it has any,
        else the default's."""
        default = self.genres[DEFAULT_GENRE]
        own = self.genres.get(genre)
        if own is None:
            return default
        return GenrePattern(genre=genre, steps={**default.steps, **own.steps}, swing=own.swing,
                            fill=own.fill or default.fill,
                            variations=own.variations or default.variations,
                            level_db={**default.level_db, **own.level_db})


def load_patterns(rules_dir: Path) -> PatternRules:
    """Read and validate ``rules_dir/patterns.toml``; raise `RuleError` listing every defect."""
    path = Path(rules_dir) / FILE_NAME
    return parse_patterns(read_toml(path, RuleError), source=path.name)


def parse_patterns(data: dict[str, Any], *, source: str = FILE_NAME) -> PatternRules:
    """Validate parsed TOML data (one table per genre) into `PatternRules`."""
    check = Checker(source)
    genres: dict[str, GenrePattern] = {}
    for genre, table in data.items():
        genres[genre] = _genre(check, genre, table)
    default = genres.get(DEFAULT_GENRE)
    if default is None:
        check.problem(DEFAULT_GENRE, "is required (it serves genres without their own patterns)")
    else:
        for name in PATTERN_INSTRUMENTS:
            if name not in default.steps:
                check.problem(f"{DEFAULT_GENRE}.{name}", "is required in the default genre")
    check.raise_if_any(RuleError)
    return PatternRules(genres=genres)


def _genre(check: Checker, genre: str, table: Any) -> GenrePattern:
    body = check.table(table, genre, (*PATTERN_INSTRUMENTS, *_EXTRAS))
    fill = _instruments(check, body.get("fill", {}), f"{genre}.fill")
    for name, steps in fill.items():
        if len(steps) != STEPS_PER_BAR:
            check.problem(f"{genre}.fill.{name}", f"a fill is one bar of {STEPS_PER_BAR} "
                                                  f"steps (got {len(steps)})")
    levels = check.table(body.get("level_db", {}), f"{genre}.level_db", PATTERN_INSTRUMENTS)
    return GenrePattern(
        genre=genre, steps=_instruments(check, body, genre, extras=_EXTRAS),
        swing=check.number(body, genre, "swing", 0.0, low=0.0, high=MAX_SWING),
        fill=fill, variations=_variations(check, body.get("variations", []), genre),
        level_db={name: check.number(levels, f"{genre}.level_db", name, low=MIN_LEVEL_DB,
                                     high=0.0) for name in levels})


def _instruments(check: Checker, table: Any, key: str, *,
                 extras: tuple[str, ...] = ()) -> dict[str, Steps]:
    """A table of instrument -> step string (and `extras`, read elsewhere)."""
    body = check.table(table, key, (*PATTERN_INSTRUMENTS, *extras))
    return {name: _steps(check, f"{key}.{name}", body[name])
            for name in PATTERN_INSTRUMENTS if name in body}


def _variations(check: Checker, raw: Any, genre: str) -> tuple[dict[str, Steps], ...]:
    """``[[GENRE.variations]]``: a list of instrument tables, none empty."""
    if not isinstance(raw, list):
        check.problem(f"{genre}.variations", f"must be a list of [[{genre}.variations]] tables")
        return ()
    variations = tuple(_instruments(check, item, f"{genre}.variations[{index}]")
                       for index, item in enumerate(raw))
    for index, variation in enumerate(variations):
        if not variation:
            check.problem(f"{genre}.variations[{index}]", "must name at least one instrument")
    return variations


def _steps(check: Checker, key: str, value: Any) -> Steps:
    """Parse one step string into velocities, recording a problem (and returning one bar of
    rests) when it is malformed."""
    rest = (0.0,) * STEPS_PER_BAR
    if not isinstance(value, str):
        check.problem(key, f"must be a step string such as 'X... x...' (got {value!r})")
        return rest
    text = value.replace(" ", "")
    bad = sorted(set(text) - set(VELOCITIES))
    if bad:
        legend = ", ".join(f"{char!r}" for char in VELOCITIES)
        check.problem(key, f"unknown step characters {''.join(bad)!r} (use {legend})")
        return rest
    if not text or len(text) % STEPS_PER_BAR:
        check.problem(key, f"must have a multiple of {STEPS_PER_BAR} steps (got {len(text)})")
        return rest
    return tuple(VELOCITIES[char] for char in text)
