"""``rules/midi.toml`` → the General MIDI drum note of each step-pattern instrument.

The MIDI export writes every hit of a one-shot lane as this note on channel 10. Instruments
left out (the tonal ``bass`` and ``stab`` parts) have no drum note, and their lanes stay out
of the MIDI file. Every defect is reported at once in one `RuleError` naming file and key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from daemon.errors import RuleError
from daemon.taxonomy import PATTERN_INSTRUMENTS
from daemon.tomlcheck import Checker, read_toml

FILE_NAME = "midi.toml"
#: General MIDI level 2 percussion keys (GM 1 uses 35..81 of them).
NOTE_RANGE = (27, 87)


def load_drum_notes(rules_dir: Path) -> Mapping[str, int]:
    """Read and validate ``rules_dir/midi.toml``; raise `RuleError` listing every defect."""
    path = Path(rules_dir) / FILE_NAME
    return parse_drum_notes(read_toml(path, RuleError), source=path.name)


def parse_drum_notes(data: dict[str, Any], *, source: str = FILE_NAME) -> Mapping[str, int]:
    """Validate parsed TOML data into an instrument → note mapping (read-only)."""
    check = Checker(source)
    table = check.table(check.table(data, "", ("drum_notes",)).get("drum_notes", {}),
                        "drum_notes", PATTERN_INSTRUMENTS)
    low, high = NOTE_RANGE
    notes = {name: check.number(table, "drum_notes", name, low=low, high=high, integer=True)
             for name in PATTERN_INSTRUMENTS if name in table}
    check.raise_if_any(RuleError)
    return MappingProxyType(notes)
