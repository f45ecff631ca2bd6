"""Step patterns for one-shots (``rules/patterns.toml``): loaded, validated, looked up by genre.

A pattern is a string of steps, 16 per bar, one character each (spaces ignored): ``X`` accent,
``x`` normal hit, ``o`` ghost note, ``.`` rest. Every defect in the file is reported at once in
one `RuleError` naming file and key (``patterns.toml: techno.kick: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import RuleError
from daemon.tomlcheck import Checker, read_toml

STEPS_PER_BAR = 16
INSTRUMENTS = ("kick", "clap", "snare", "hihat", "open_hat", "cymbal", "perc", "tom", "bass",
               "stab")
#: Step character → velocity (0..1). Ghost notes sit at 0.45 so quiet sections can drop them.
VELOCITIES = {"X": 1.0, "x": 0.75, "o": 0.45, ".": 0.0}
DEFAULT_GENRE = "default"
MAX_SWING = 0.5  # half a sixteenth: beyond this the off-step would pass the next step's midpoint
FILE_NAME = "patterns.toml"


@dataclass(frozen=True)
class GenrePattern:
    """The drum machine of one genre: per instrument a velocity per step, and the swing."""

    genre: str
    steps: Mapping[str, tuple[float, ...]]
    swing: float

    def bars(self, instrument: str) -> int:
        """Length of the instrument's pattern in bars."""
        return len(self.steps[instrument]) // STEPS_PER_BAR


@dataclass(frozen=True)
class PatternRules:
    """All genres of ``patterns.toml``; `DEFAULT_GENRE` fills every gap."""

    genres: Mapping[str, GenrePattern]

    def for_genre(self, genre: str) -> GenrePattern:
        """The genre's patterns, with instruments it leaves out taken from the default."""
        default = self.genres[DEFAULT_GENRE]
        own = self.genres.get(genre)
        if own is None:
            return default
        return GenrePattern(genre=genre, steps={**default.steps, **own.steps}, swing=own.swing)


def load_patterns(rules_dir: Path) -> PatternRules:
    """Read and validate ``rules_dir/patterns.toml``; raise `RuleError` listing every defect."""
    path = Path(rules_dir) / FILE_NAME
    return parse_patterns(read_toml(path, RuleError), source=path.name)


def parse_patterns(data: dict[str, Any], *, source: str = FILE_NAME) -> PatternRules:
    """Validate parsed TOML data (one table per genre) into `PatternRules`."""
    check = Checker(source)
    genres: dict[str, GenrePattern] = {}
    for genre, table in data.items():
        body = check.table(table, genre, (*INSTRUMENTS, "swing"))
        steps = {name: _steps(check, f"{genre}.{name}", body[name])
                 for name in INSTRUMENTS if name in body}
        swing = check.number(body, genre, "swing", 0.0, low=0.0, high=MAX_SWING)
        genres[genre] = GenrePattern(genre=genre, steps=steps, swing=swing)
    default = genres.get(DEFAULT_GENRE)
    if default is None:
        check.problem(DEFAULT_GENRE, "is required (it serves genres without their own patterns)")
    else:
        for name in INSTRUMENTS:
            if name not in default.steps:
                check.problem(f"{DEFAULT_GENRE}.{name}", "is required in the default genre")
    check.raise_if_any(RuleError)
    return PatternRules(genres=genres)


def _steps(check: Checker, key: str, value: Any) -> tuple[float, ...]:
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
