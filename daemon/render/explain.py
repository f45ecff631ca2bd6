"""Why each lane plays what it plays: the chosen stem, its score breakdown and the runner-up.

A `Decision` is recorded whenever a lane takes a stem (its first section, and again when a
returning section varies it). `explain` turns a selection into the JSON the render report
carries under ``"selection"``; `explain_lines` prints the same for ``traum plan --explain``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.compose.plan import Plan
from daemon.render.backbone import TIERS, Backbone
from daemon.render.scoring import WEIGHTS, Score
from daemon.store.records import StemRecord

#: The criteria every breakdown shows first, in this order (the others follow).
SHOWN = ("genre", "kit", "tempo", "key", "chroma", "role", "similarity")


@dataclass(frozen=True)
class Candidate:
    """A stem as ranked for a lane: its kit tier (`TIERS`), its score and its key shift."""

    stem: StemRecord
    tier: int
    score: Score
    semitones: int

    def as_dict(self) -> dict[str, Any]:
        return {"stem_id": self.stem.id, "kit": self.stem.kit, "file": _file(self.stem),
                "category": self.stem.category, "tier": TIERS[self.tier],
                "total": round(self.score.total, 3), "scores": self.score.as_dict(),
                "semitones": self.semitones}


@dataclass(frozen=True)
class Decision:
    """A lane taking a stem in section `section` (its first), over `runner_up`."""

    lane: str
    category: str
    section: int
    chosen: Candidate
    runner_up: Candidate | None

    def as_dict(self, plan: Plan) -> dict[str, Any]:
        return {"lane": self.lane, "category": self.category,
                "section": plan.structure[self.section].section,
                "chosen": self.chosen.as_dict(),
                "runner_up": None if self.runner_up is None else self.runner_up.as_dict()}


def explain(plan: Plan, decisions: Sequence[Decision], *, backbone: Backbone | None,
            overrides: Sequence[Mapping[str, Any]], fallbacks: Sequence[str]) -> dict:
    """The report's ``"selection"``: weights, backbone, per-lane decisions, the labels the
    renderer overrode by ear or role check, and what fell back."""
    return {"weights": dict(WEIGHTS),
            "backbone": None if backbone is None else backbone.as_dict(),
            "lanes": [decision.as_dict(plan) for decision in decisions],
            "overrides": [dict(item) for item in overrides],
            "fallbacks": list(fallbacks)}


def explain_lines(selection: Mapping[str, Any]) -> list[str]:
    """`explain`'s JSON as text: the backbone, then one block per lane decision."""
    lines = []
    backbone = selection.get("backbone")
    if backbone:
        lines.append(f"backbone: {', '.join(backbone['kits'])} (family {backbone['family']})")
        lines += [f"  {note}" for note in backbone["notes"]]
    for lane in selection["lanes"]:
        lines.append(f"{lane['lane']:<9} from {lane['section']}: {_line(lane['chosen'])}")
        lines.append(f"{'':<9}   {_breakdown(lane['chosen']['scores'])}")
        runner = lane["runner_up"]
        lines.append(f"{'':<9}   runner-up: {_line(runner)}" if runner else
                     f"{'':<9}   runner-up: none")
        if runner:
            lines.append(f"{'':<9}   {_breakdown(runner['scores'])}")
    lines += [f"override: {_override(item)}" for item in selection["overrides"]]
    lines += [f"fallback: {item}" for item in selection["fallbacks"]]
    return lines


def _line(candidate: Mapping[str, Any]) -> str:
    shift = f", {candidate['semitones']:+d} st" if candidate["semitones"] else ""
    return (f"{candidate['kit']}/{candidate['file']} (score {candidate['total']:.2f}, "
            f"{candidate['tier']}{shift})")


def _breakdown(scores: Mapping[str, float]) -> str:
    order = [*SHOWN, *(name for name in scores if name not in SHOWN)]
    return " ".join(f"{name} {scores[name]:.2f}" for name in order if name in scores)


def _override(item: Mapping[str, Any]) -> str:
    return f"{item['kit']}/{item['file']}: {item['reason']} ({item['action']})"


def _file(stem: StemRecord) -> str:
    return stem.rel_path or Path(stem.path).name
