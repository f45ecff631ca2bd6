"""Roles guarded: a one-shot plays a lane only if its audio is plausible for the part.

A category label is a hypothesis. A vinyl-crackle bed named ``HiHat_Dusty_03.wav`` is filed
as a hi-hat, and sequenced on the hi-hat pattern it would fire ninety sharp impulses into the
mix. Before a one-shot is chosen, its stored descriptors (the ingest's analysis) are checked
against its lane category's `Shape` from ``rules/categories.toml``: a hit decays, has few
attacks, and sits in the band its part needs. A stem that fails is not used in the lane; a
stem that passes scores by its category confidence, so a doubtful label ranks below a sure
one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from daemon.categories import Shape
from daemon.store.records import StemRecord

#: A steady bed, not a hit: at least this long (s) ...
BED_SECONDS = 0.5
#: ... with this share of its frames within 10 dB of its loudest ...
BED_SUSTAIN = 0.9
#: ... and still this loud (dB below its loudest frame) in its final tenth.
BED_TAIL_DB = -6.0
#: Onsets of clips shorter than this are counted over this long (the ingest's convention).
MIN_ONSET_SECONDS = 0.5


@dataclass(frozen=True)
class RoleCheck:
    """Whether a stem can play a lane (`plausible`), its role score (0..1) and, when it
    cannot, why."""

    plausible: bool
    score: float
    reason: str = ""


def check_role(stem: StemRecord, shape: Shape) -> RoleCheck:
    """Check a one-shot against its lane category's `shape` (a loop, or a stem without stored
    descriptors, is not checked: nothing says it is implausible).

    The score is 0.5 + 0.5 x the stem's category confidence when it passes, 0 when it fails.
    """
    confidence = min(1.0, max(0.0, stem.category_confidence))
    passed = RoleCheck(True, 0.5 + 0.5 * confidence)
    if stem.kind == "loop" or not stem.descriptors:
        return passed
    problems = shape_problems(stem.descriptors, shape)
    if problems:
        return RoleCheck(False, 0.0, "; ".join(problems))
    return passed


def shape_problems(descriptors: Mapping[str, float], shape: Shape) -> list[str]:
    """What in `descriptors` contradicts `shape` (empty when nothing does); descriptors a
    check needs but the stem lacks are not held against it."""
    found = []
    duration = descriptors.get("duration_s")
    if shape.decays and _is_bed(descriptors):
        found.append(f"no decay over {duration:.1f} s (a steady bed, not a hit)")
    rate = descriptors.get("onset_rate")
    if shape.max_onsets is not None and rate is not None and duration is not None:
        onsets = rate * max(duration, MIN_ONSET_SECONDS)
        if onsets > shape.max_onsets:
            found.append(f"{onsets:.0f} attacks (a hit has at most {shape.max_onsets:g})")
    low = descriptors.get("low_ratio")
    if low is not None and shape.min_low_ratio is not None and low < shape.min_low_ratio:
        found.append(f"{low:.0%} of its power below 150 Hz (needs {shape.min_low_ratio:.0%})")
    if low is not None and shape.max_low_ratio is not None and low > shape.max_low_ratio:
        found.append(f"{low:.0%} of its power below 150 Hz (at most "
                     f"{shape.max_low_ratio:.0%})")
    return found


def _is_bed(descriptors: Mapping[str, float]) -> bool:
    needed = ("duration_s", "sustain", "tail_db")
    if any(name not in descriptors for name in needed):
        return False
    return (descriptors["duration_s"] >= BED_SECONDS and descriptors["sustain"] >= BED_SUSTAIN
            and descriptors["tail_db"] > BED_TAIL_DB)
