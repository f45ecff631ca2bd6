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
from daemon.keys import parse_key

#: Beats per bar; every genre here is in 4/4.
BEATS_PER_BAR = 4
#: Tempo limits any plan may carry (the arranger clamps prompts into this range).
MIN_BPM, MAX_BPM = 40.0, 250.0


@dataclass(frozen=True)
class StemQuery:
    """One lane's request: `count` stems of `category`, preferably carrying `tags`."""

    category: str
    tags: tuple[str, ...] = ()
    count: int = 1


@dataclass(frozen=True)
class Section:
    """A run of `bars` bars at `energy` (0..1) in which the listed lanes play.

    `variation` picks the step patterns: 0 the genre's own, n >= 1 its n-th variation (a
    second drop plays 1, so it sounds different). With `fills`, the last bar of every 8-bar
    phrase and of the section plays the genre's fill.
    """

    section: str
    bars: int
    energy: float
    stem_queries: tuple[StemQuery, ...] = ()
    variation: int = 0
    fills: bool = False


@dataclass(frozen=True)
class Plan:
    """A whole arrangement. `key` is canonical (``"F# minor"``); `seed` fixes every choice.

    `four_on_floor`: the genre puts a kick on every beat, so the kick must lead the groove.
    """

    prompt: str
    genre: str
    bpm: float
    key: str
    seed: int
    moods: tuple[str, ...] = ()
    structure: tuple[Section, ...] = ()
    notes: tuple[str, ...] = ()
    length_seconds: float = field(default=0.0)
    four_on_floor: bool = False

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
        four_on_floor=_flag(data, "four_on_floor", "plan"),
    )


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
        variation=_variation(data, where),
        fills=_flag(data, "fills", where),
    )


def _variation(data: dict, where: str) -> int:
    variation = _number(data, "variation", where) if "variation" in data else 0
    if variation != int(variation) or variation < 0:
        raise PlanError(f"{where}.variation: must be a whole number >= 0 (got {variation:g})")
    return int(variation)


def _flag(data: dict, name: str, where: str) -> bool:
    """An optional true/false field; plans written before it existed read as false."""
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise PlanError(f"{where}.{name}: must be true or false (got {value!r})")
    return value


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
