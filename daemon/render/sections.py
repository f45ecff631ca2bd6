"""How the renderer reads a plan's sections: which ones start a drop, and which are repeats.

Selection (a riser before a drop, fresh top lines when a section comes back), layout (a riser
region ends at the drop) and the mix (fades, sweeps into drops) all read sections this way.
"""

from __future__ import annotations

import re

from daemon.compose.plan import Plan

DROP_ENERGY_JUMP = 0.25  # an energy rise this large into a loud section makes it a drop
DROP_MIN_ENERGY = 0.7


def drop_sections(plan: Plan) -> set[int]:
    """Indices of sections that start a drop: named so (the first part of it), or a large
    energy jump into a loud part."""
    drops = set()
    for index, section in enumerate(plan.structure):
        previous = plan.structure[index - 1] if index else None
        occurrence = section_occurrence(section.section)
        named = "drop" in occurrence and (
            previous is None or section_occurrence(previous.section) != occurrence)
        jump = previous is not None and section.energy >= DROP_MIN_ENERGY and \
            section.energy - previous.energy >= DROP_ENERGY_JUMP
        if named or jump:
            drops.add(index)
    return drops


def section_occurrence(name: str) -> str:
    """A section name without its part letter: "Drop 1 B" → "drop 1"."""
    return re.sub(r"\s+[a-z]$", "", name.strip().lower())
