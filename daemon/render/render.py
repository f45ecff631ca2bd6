"""Plan → mastered WAV with section cues, and a JSON report beside it.

The pipeline, in order: keep readable stems → select a stem per lane and section → lay the
picks out as regions → conform each stem once (cached) → mix the regions into one bus →
master it → write the WAV and the report, both atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from daemon.compose.plan import Plan, plan_to_dict
from daemon.config import RenderSettings
from daemon.errors import RenderError
from daemon.render.conform import conform_loop, conform_oneshot
from daemon.render.export import Cue, write_json, write_wav
from daemon.render.master import master
from daemon.render.mix import energy_gain_db, mix_regions
from daemon.render.patterns import PatternRules
from daemon.render.select import Pick, Selection, select_stems
from daemon.render.sequence import Grid, Region, build_regions
from daemon.store.records import StemRecord

TAIL_SECONDS = 0.0  # the track ends on the last bar line (the outro fades over its last bar)


@dataclass(frozen=True)
class Choice:
    """One stem playing in one lane of one section, as reported."""

    stem_id: int
    kit: str
    file: str
    section: str
    lane: str
    category: str
    stretch_ratio: float  # playback speed plan_bpm / stem tempo; 1.0 for one-shots
    semitones: int
    gain_db: float  # lane staging plus the section's energy level, before mastering


@dataclass(frozen=True)
class RenderResult:
    wav: Path
    report: Path
    lufs: float
    true_peak_db: float
    duration: float
    choices: tuple[Choice, ...]
    fallbacks: tuple[str, ...]

    def lane_stems(self) -> list[Choice]:
        """The first choice of each (lane, stem) pair, in order: who plays what, once."""
        firsts: dict[tuple[str, int], Choice] = {}
        for choice in self.choices:
            firsts.setdefault((choice.lane, choice.stem_id), choice)
        return list(firsts.values())


def render_plan(plan: Plan, stems: Sequence[StemRecord], *, out_wav: Path,
                settings: RenderSettings, cache_dir: Path, patterns: PatternRules,
                extra_scores: Mapping[int, float] | None = None) -> RenderResult:
    """Render `plan` from `stems` to `out_wav` (+ ``.json``); raise `RenderError` when the
    library cannot serve it at all."""
    out_wav = Path(out_wav)
    usable = [stem for stem in stems if Path(stem.path).is_file()]
    if not usable:
        raise RenderError(f"{out_wav.name}: no usable stems: the library is empty or its "
                          f"files are missing; ingest a kit first")
    selection = select_stems(plan, usable, settings=settings, extra_scores=extra_scores)
    regions, sources, ratios, failures = conform_picks(
        plan, selection, settings=settings, cache_dir=cache_dir)
    fallbacks = (*selection.fallbacks, *failures)
    if not regions:
        raise RenderError(f"{out_wav.name}: none of the {len(usable)} stems in the library "
                          f"fits the plan ({plan.bpm:g} BPM, {plan.key}): "
                          f"{'; '.join(fallbacks) or 'no lanes requested'}")
    grid = Grid(settings.sample_rate, plan.bpm)
    lanes_dir = out_wav.parent / f"{out_wav.stem}.lanes" if settings.export_lanes else None
    mixed = mix_regions(regions, source_for=lambda region: sources[_source_key(region.pick)],
                        grid=grid, plan=plan, pattern=patterns.for_genre(plan.genre),
                        settings=settings, lanes_dir=lanes_dir)
    mastered = master(mixed.bus, sample_rate=grid.sample_rate, target_lufs=settings.target_lufs,
                      ceiling_db=settings.true_peak_db)
    if not np.isfinite(mastered.lufs):
        raise RenderError(f"{out_wav.name}: the mix is silent (the chosen stems hold no audio)")
    write_wav(out_wav, mixed.bus, sample_rate=grid.sample_rate, bit_depth=settings.bit_depth,
              cues=section_cues(plan, grid))
    notes = [*mixed.notes, *mastered.notes]
    if lanes_dir is not None:
        _remove_stale_lanes(lanes_dir, keep={region.lane for region in regions})
        notes.append(f"lanes written to {lanes_dir.name}/ (32-bit float, mix level, before "
                     f"mastering)")
    result = RenderResult(out_wav, out_wav.with_suffix(".json"), float(mastered.lufs),
                          float(mastered.true_peak_db), mixed.bus.shape[1] / grid.sample_rate,
                          _choices(plan, selection, regions, ratios, mixed.lane_gain_db),
                          tuple(fallbacks))
    write_json(result.report, _report(plan, result, grid=grid, settings=settings, notes=notes))
    return result


def conform_picks(plan: Plan, selection: Selection, *, settings: RenderSettings,
                  cache_dir: Path) -> tuple[list[Region], dict, dict, list[str]]:
    """Regions of the selection whose stems could be conformed, the conformed audio and loop
    speed ratios per source key, and a fallback note for every stem that failed."""
    sources: dict[tuple, np.ndarray] = {}
    ratios: dict[tuple, float] = {}
    failed: dict[tuple, str] = {}
    kept = []
    for region in build_regions(plan, selection.picks):
        key = _source_key(region.pick)
        if key not in sources and key not in failed:
            try:
                sources[key], ratios[key] = _conform(region.pick, plan=plan, settings=settings,
                                                     cache_dir=cache_dir)
            except RenderError as exc:
                failed[key] = f"{region.lane}: {region.pick.stem.rel_path} unusable ({exc}); " \
                              f"lane left out"
        if key in sources:
            kept.append(region)
    return kept, sources, ratios, list(failed.values())


def section_cues(plan: Plan, grid: Grid) -> list[Cue]:
    """One cue per section start, named after the section."""
    return [Cue(grid.bar(start), section.section)
            for start, section in zip(plan.section_starts(), plan.structure)]


def _conform(pick: Pick, *, plan: Plan, settings: RenderSettings,
             cache_dir: Path) -> tuple[np.ndarray, float]:
    stem, fit = pick.stem, pick.fit
    if stem.kind == "loop" and fit.source_bpm:
        return conform_loop(stem, source_bpm=fit.source_bpm, plan_bpm=plan.bpm,
                            semitones=fit.semitones, sample_rate=settings.sample_rate,
                            cache_dir=cache_dir)
    return conform_oneshot(stem, semitones=fit.semitones, sample_rate=settings.sample_rate,
                           cache_dir=cache_dir), 1.0


def _remove_stale_lanes(lanes_dir: Path, *, keep: set[str]) -> None:
    """Delete lane WAVs an earlier render of the same file left behind."""
    for path in lanes_dir.glob("*.wav"):
        if path.stem not in keep:
            path.unlink(missing_ok=True)


def _choices(plan: Plan, selection: Selection, regions: Sequence[Region],
             ratios: Mapping[tuple, float],
             lane_gains: Mapping[tuple[str, int], float]) -> tuple[Choice, ...]:
    """What played where, by section then lane."""
    played = sorted((pick for region in regions for pick in _region_picks(region, selection)),
                    key=lambda pick: (pick.section, pick.lane))
    return tuple(_choice(pick, plan=plan, ratio=ratios.get(_source_key(pick), 1.0),
                         lane_gain=lane_gains.get((pick.lane, pick.stem.id), 0.0))
                 for pick in played)


def _report(plan: Plan, result: RenderResult, *, grid: Grid, settings: RenderSettings,
            notes: Sequence[str]) -> dict:
    """The JSON report: plan, chosen stems, measurements, fallbacks and notes."""
    return {
        "plan": plan_to_dict(plan),
        "stems": [asdict(choice) for choice in result.choices],
        "measured": {"lufs": round(result.lufs, 3), "true_peak_db": round(result.true_peak_db, 3),
                     "duration_seconds": round(result.duration, 6)},
        "tail_seconds": TAIL_SECONDS, "sample_rate": grid.sample_rate,
        "bit_depth": settings.bit_depth,
        "sections": [{"section": cue.label, "start_seconds": cue.position / grid.sample_rate}
                     for cue in section_cues(plan, grid)],
        "fallbacks": list(result.fallbacks), "notes": list(notes),
    }


def _source_key(pick: Pick) -> tuple:
    return pick.stem.id, pick.fit.semitones, pick.fit.source_bpm


def _region_picks(region: Region, selection: Selection) -> list[Pick]:
    return [pick for pick in selection.picks
            if pick.lane == region.lane and pick.section in region.sections]


def _choice(pick: Pick, *, plan: Plan, ratio: float, lane_gain: float) -> Choice:
    section = plan.structure[pick.section]
    return Choice(stem_id=pick.stem.id, kit=pick.stem.kit,
                  file=pick.stem.rel_path or Path(pick.stem.path).name,
                  section=section.section, lane=pick.lane, category=pick.stem.category,
                  stretch_ratio=round(ratio, 6), semitones=pick.fit.semitones,
                  gain_db=round(lane_gain + energy_gain_db(section.energy), 3))
