"""The track plan: the contract between the arranger and the renderer.

A `Plan` is plain, frozen data with a JSON round trip. `plan_from_dict` validates
everything a renderer relies on and raises `PlanError` naming the bad field, so a
hand-edited or truncated plan file is refused with a clear message.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from daemon.errors import PlanError

#: Beats per bar; every genre here is in 4/4.
BEATS_PER_BAR = 4
#: Tempo limits any plan may carry (the arranger clamps prompts into this range).
MIN_BPM, MAX_BPM = 40.0, 250.0

TONICS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = ("major", "minor")


@dataclass(frozen=True)
class StemQuery:
    """One lane's request: `count` stems of `category`, preferably carrying `tags`."""

    category: str
    tags: tuple[str, ...] = ()
    count: int = 1


@dataclass(frozen=True)
class Section:
    """A run of `bars` bars at `energy` (0..1) in which the listed lanes play."""

    section: str
    bars: int
    energy: float
    stem_queries: tuple[StemQuery, ...] = ()


@dataclass(frozen=True)
class Plan:
    """A whole arrangement. `key` is canonical (``"F# minor"``); `seed` fixes every choice."""

    prompt: str
    genre: str
    bpm: float
    key: str
    seed: int
    moods: tuple[str, ...] = ()
    structure: tuple[Section, ...] = ()
    notes: tuple[str, ...] = ()
    length_seconds: float = field(default=0.0)

    @property
    def bars(self) -> int:
        """Total bars over all sections."""
        return sum(section.bars for section in self.structure)

    @property
    def seconds_per_bar(self) -> float:
        return BEATS_PER_BAR * 60.0 / self.bpm

    def section_starts(self) -> list[int]:
        """First bar of each section, in order."""
        starts, bar = [], 0
        for section in self.structure:
            starts.append(bar)
            bar += section.bars
        return starts


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """Return the JSON-ready dict of `plan` (lists instead of tuples)."""
    return json.loads(json.dumps(asdict(plan)))


def plan_to_json(plan: Plan) -> str:
    return json.dumps(plan_to_dict(plan), indent=2, ensure_ascii=False)


def plan_from_json(text: str) -> Plan:
    """Parse and validate plan JSON; raise `PlanError` on any defect."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"plan is not valid JSON: {exc}") from exc
    return plan_from_dict(data)


def plan_from_dict(data: Any) -> Plan:
    """Build a `Plan` from untrusted data; raise `PlanError` naming the first bad field."""
    if not isinstance(data, dict):
        raise PlanError("plan: must be a JSON object")
    bpm = _number(data, "bpm", "plan")
    if not MIN_BPM <= bpm <= MAX_BPM:
        raise PlanError(f"plan.bpm: must be between {MIN_BPM:g} and {MAX_BPM:g} (got {bpm:g})")
    key = _text(data, "key", "plan")
    parse_key(key, where="plan.key")
    sections = data.get("structure")
    if not isinstance(sections, list) or not sections:
        raise PlanError("plan.structure: must be a non-empty list of sections")
    return Plan(
        prompt=_text(data, "prompt", "plan", allow_empty=True),
        genre=_text(data, "genre", "plan"),
        bpm=bpm,
        key=key,
        seed=int(_number(data, "seed", "plan")),
        moods=tuple(_strings(data.get("moods", []), "plan.moods")),
        structure=tuple(_section(s, f"plan.structure[{i}]") for i, s in enumerate(sections)),
        notes=tuple(_strings(data.get("notes", []), "plan.notes")),
        length_seconds=float(data.get("length_seconds", 0.0) or 0.0),
    )


def parse_key(key: str, *, where: str = "key") -> tuple[int, str]:
    """Split a canonical key such as ``"F# minor"`` into (pitch class 0..11, mode)."""
    parts = key.split()
    if len(parts) != 2 or parts[0] not in TONICS or parts[1] not in MODES:
        raise PlanError(f"{where}: must look like 'F# minor' or 'C major' (got {key!r})")
    return TONICS.index(parts[0]), parts[1]


def format_key(pitch_class: int, mode: str) -> str:
    """Canonical key text for a pitch class (0 = C) and mode."""
    return f"{TONICS[pitch_class % 12]} {mode}"


def _section(data: Any, where: str) -> Section:
    if not isinstance(data, dict):
        raise PlanError(f"{where}: must be an object")
    bars = _number(data, "bars", where)
    if bars != int(bars) or bars < 1:
        raise PlanError(f"{where}.bars: must be a whole number of bars >= 1 (got {bars:g})")
    energy = _number(data, "energy", where)
    if not 0.0 <= energy <= 1.0:
        raise PlanError(f"{where}.energy: must be between 0 and 1 (got {energy:g})")
    queries = data.get("stem_queries", [])
    if not isinstance(queries, list):
        raise PlanError(f"{where}.stem_queries: must be a list")
    return Section(
        section=_text(data, "section", where),
        bars=int(bars),
        energy=energy,
        stem_queries=tuple(_query(q, f"{where}.stem_queries[{i}]") for i, q in enumerate(queries)),
    )


def _query(data: Any, where: str) -> StemQuery:
    if not isinstance(data, dict):
        raise PlanError(f"{where}: must be an object")
    count = _number(data, "count", where) if "count" in data else 1
    if count != int(count) or not 1 <= count <= 8:
        raise PlanError(f"{where}.count: must be a whole number from 1 to 8 (got {count:g})")
    return StemQuery(
        category=_text(data, "category", where),
        tags=tuple(_strings(data.get("tags", []), f"{where}.tags")),
        count=int(count),
    )


def _number(data: dict, name: str, where: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PlanError(f"{where}.{name}: must be a number (got {value!r})")
    return float(value)


def _text(data: dict, name: str, where: str, *, allow_empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise PlanError(f"{where}.{name}: must be a non-empty string (got {value!r})")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanError(f"{where}: must be a list of strings")
    return value
