"""How one stem fits a plan: the speed it must play at and the key shift it needs.

A loop is read at its stated tempo, or at half or double time when that needs less
stretching; a tonal stem is shifted to the plan's key or its relative (`daemon.keys`), by the
key it plays in (its label, or the one the ear hears). Stems that cannot fit within the
render settings' limits are not candidates at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.categories import CategoryTable
from daemon.compose.plan import Plan
from daemon.config import RenderSettings
from daemon.errors import PlanError
from daemon.keys import key_fit
from daemon.store.records import StemRecord

SILENT_DB = -60.0  # integrated loudness / peak below this: a silent file, never chosen
MIN_DURATION = 0.02  # seconds; anything shorter is a glitch, not a sample
TEMPO_MULTIPLES = (1.0, 0.5, 2.0)  # as-is, then half and double time
OFF_TEMPO_PENALTY = 0.9  # half or double time fits, but less naturally than the stated tempo


@dataclass(frozen=True)
class Fit:
    """How one stem fits the plan: speed factor, effective tempo, key shift and their scores."""

    stretch_ratio: float  # playback speed plan_bpm / source_bpm (1.0 untouched, one-shots)
    source_bpm: float | None  # the stem's tempo after half/double-time reading
    semitones: int
    tempo_score: float
    key_score: float


def tempo_fit(stem_bpm: float, plan_bpm: float, max_stretch: float) -> tuple[float, float] | None:
    """Return (speed ratio, effective source bpm) of the best tempo reading, or None when no
    reading lies within `max_stretch` (largest allowed |1 - ratio|)."""
    best = min(TEMPO_MULTIPLES, key=lambda m: abs(1.0 - plan_bpm / (stem_bpm * m)))
    ratio = plan_bpm / (stem_bpm * best)
    if abs(1.0 - ratio) > max_stretch + 1e-9:
        return None
    return ratio, stem_bpm * best


def fit_stem(stem: StemRecord, *, plan: Plan, settings: RenderSettings,
             categories: CategoryTable) -> Fit | None:
    """How `stem` fits `plan`, or None when it cannot be used.

    Parameters
    ----------
    stem : StemRecord
        A library stem (its `key` is the one it plays in: the label, or the ear's).
    plan : Plan
        Its tempo (BPM) and key are what the stem must fit.
    settings : RenderSettings
        ``max_stretch`` (largest |1 - speed ratio|) and ``max_semitones`` bound the fit.
    categories : CategoryTable
        Whether the stem's category carries a key (``tonal``).

    Returns
    -------
    Fit or None
        None for a stem that is silent or shorter than `MIN_DURATION`, whose tempo or key lies
        out of range, a loop without tempo, or a category the rules do not define.
    """
    rule = categories.get(stem.category)
    if rule is None or stem.duration < MIN_DURATION or stem.peak_db < SILENT_DB or (
            stem.lufs is not None and stem.lufs < SILENT_DB):
        return None
    ratio, source_bpm, tempo_score = 1.0, None, 1.0
    if stem.kind == "loop":
        if not stem.bpm:
            return None
        reading = tempo_fit(stem.bpm, plan.bpm, settings.max_stretch)
        if reading is None:
            return None
        ratio, source_bpm = reading
        slack = abs(1.0 - ratio) / settings.max_stretch if settings.max_stretch else 0.0
        tempo_score = (1.0 - 0.5 * slack) * (1.0 if source_bpm == stem.bpm else OFF_TEMPO_PENALTY)
    semitones, key_score = _key_fit(stem, plan.key, tonal=rule.tonal)
    if abs(semitones) > settings.max_semitones:
        return None
    return Fit(ratio, source_bpm, semitones, tempo_score, key_score)


def _key_fit(stem: StemRecord, plan_key: str, *, tonal: bool) -> tuple[int, float]:
    """(semitones, key score) of a stem; drums and unknown keys need no shift."""
    if not tonal:
        return 0, 1.0
    if not stem.key:
        return 0, 0.5  # tonal but unanalysed: usable, ranked below keyed stems
    try:
        return key_fit(stem.key, plan_key)
    except PlanError:
        return 0, 0.5
