"""Plan → `RenderedTrack`: the mastered track and everything its outputs are written from.

The pipeline, in order: keep readable stems → select a stem per lane and section → lay the
picks out as regions → conform each stem once (cached) → mix the regions into one bus →
master it. Nothing is written here: `daemon.render.outputs` writes the WAV, the report and
the configured exports from the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from daemon.categories import CategoryTable
from daemon.compose.plan import Plan
from daemon.config import RenderSettings
from daemon.errors import RenderError
from daemon.kits.family import KitLibrary
from daemon.render.backbone import Backbone
from daemon.render.beatguard import mix_leading_kick
from daemon.render.conform import conform_loop, conform_oneshot
from daemon.render.master import master
from daemon.render.mix import section_gain_db
from daemon.render.patterns import PatternRules
from daemon.render.select import Pick, Selection, select_stems
from daemon.render.sequence import Grid, Region, build_regions
from daemon.render.track import Choice, RenderedTrack, source_key
from daemon.store.records import StemRecord


def render_plan(plan: Plan, stems: Sequence[StemRecord], *, settings: RenderSettings,
                cache_dir: Path, patterns: PatternRules, drum_notes: Mapping[str, int],
                categories: CategoryTable,
                extra_scores: Mapping[int, float] | None = None,
                kits: KitLibrary | None = None,
                backbone: Backbone | None = None) -> RenderedTrack:
    """Render `plan` from `stems` into a mastered track, held in memory.

    Parameters
    ----------
    plan : Plan
        The arrangement.
    stems : sequence of StemRecord
        The library; stems whose file is missing are skipped.
    settings : RenderSettings
        Output sample rate and bit depth, loudness target (LUFS), true-peak ceiling (dBTP),
        stretch and shift limits, sidechain.
    cache_dir : Path
        Where conformed stems are cached.
    patterns : PatternRules
        The one-shot step patterns (``rules/patterns.toml``).
    drum_notes : mapping
        Pattern instrument → General MIDI drum note (``rules/midi.toml``), for the MIDI export.
    categories : CategoryTable
        Category traits (``rules/categories.toml``, `daemon.categories.load_categories`).
    extra_scores : mapping, optional
        Stem id → prompt similarity (0..1) from a text-capable embedding backend.
    kits : KitLibrary, optional
        The kits' profiles: with them the track is built from a backbone kit
        (`daemon.render.select`).
    backbone : Backbone, optional
        The plan's backbone when the caller chose it already (`select_stems`).

    Returns
    -------
    RenderedTrack
        The mastered bus, ``(2, grid.bar(plan.bars))`` float32, with the regions, conformed
        sources and lane gains to render any lane again, and the choices, fallbacks and notes.

    Raises
    ------
    RenderError
        The library cannot serve the plan at all, or the mix is silent.
    """
    usable = [stem for stem in stems if Path(stem.path).is_file()]
    if not usable:
        raise RenderError("no usable stems: the library is empty or its files are missing; "
                          "ingest a kit first")
    selection = select_stems(plan, usable, settings=settings, categories=categories,
                             extra_scores=extra_scores, cache_dir=cache_dir, kits=kits,
                             backbone=backbone)
    regions, sources, ratios, failures = conform_picks(
        plan, selection, settings=settings, cache_dir=cache_dir, categories=categories)
    fallbacks = (*selection.fallbacks, *failures)
    if not regions:
        raise RenderError(f"none of the {len(usable)} stems in the library fits the plan "
                          f"({plan.bpm:g} BPM, {plan.key}): "
                          f"{'; '.join(fallbacks) or 'no lanes requested'}")
    grid = Grid(settings.sample_rate, plan.bpm)
    pattern = patterns.for_genre(plan.genre)
    mixed, regions, beat_notes = mix_leading_kick(
        regions, source_for=lambda region: sources[source_key(region.pick)], grid=grid,
        plan=plan, pattern=pattern, settings=settings)
    mastered = master(mixed.bus, sample_rate=grid.sample_rate, target_lufs=settings.target_lufs,
                      ceiling_db=settings.true_peak_db)
    if not np.isfinite(mastered.lufs):
        raise RenderError("the mix is silent (the chosen stems hold no audio)")
    return RenderedTrack(
        plan=plan, settings=settings, grid=grid, pattern=pattern, regions=tuple(regions),
        drum_notes=drum_notes, sources=sources, lane_gain_db=mixed.lane_gain_db,
        lane_peak=mixed.lane_peak, kicks=mixed.kicks, bus=mixed.bus, mastering=mastered,
        choices=_choices(plan, selection, regions, ratios, mixed.lane_gain_db),
        fallbacks=tuple(fallbacks), notes=(*mixed.notes, *beat_notes, *mastered.notes),
        selection=selection.explanation or {})


def conform_picks(plan: Plan, selection: Selection, *, settings: RenderSettings,
                  cache_dir: Path,
                  categories: CategoryTable) -> tuple[list[Region], dict, dict, list[str]]:
    """Regions of the selection whose stems could be conformed, the conformed audio and loop
    speed ratios per source key, and a fallback note for every stem that failed."""
    sources: dict[tuple, np.ndarray] = {}
    ratios: dict[tuple, float] = {}
    failed: dict[tuple, str] = {}
    kept = []
    for region in build_regions(plan, selection.picks, categories=categories):
        key = source_key(region.pick)
        if key not in sources and key not in failed:
            try:
                sources[key], ratios[key] = _conform(region.pick, plan=plan, settings=settings,
                                                     cache_dir=cache_dir, categories=categories)
            except RenderError as exc:
                failed[key] = f"{region.lane}: {region.pick.stem.rel_path} unusable ({exc}); " \
                              f"lane left out"
        if key in sources:
            kept.append(region)
    return kept, sources, ratios, list(failed.values())


def _conform(pick: Pick, *, plan: Plan, settings: RenderSettings, cache_dir: Path,
             categories: CategoryTable) -> tuple[np.ndarray, float]:
    stem, fit = pick.stem, pick.fit
    if stem.kind == "loop" and fit.source_bpm:
        return conform_loop(stem, source_bpm=fit.source_bpm, plan_bpm=plan.bpm,
                            semitones=fit.semitones, sample_rate=settings.sample_rate,
                            cache_dir=cache_dir, categories=categories)
    return conform_oneshot(stem, semitones=fit.semitones, sample_rate=settings.sample_rate,
                           cache_dir=cache_dir, categories=categories), 1.0


def _choices(plan: Plan, selection: Selection, regions: Sequence[Region],
             ratios: Mapping[tuple, float],
             lane_gains: Mapping[tuple[str, int], float]) -> tuple[Choice, ...]:
    """What played where, by section then lane."""
    played = sorted(((pick, region) for region in regions
                     for pick in _region_picks(region, selection)),
                    key=lambda played: (played[0].section, played[0].lane))
    return tuple(_choice(pick, plan=plan, ratio=ratios.get(source_key(pick), 1.0),
                         gain_db=section_gain_db(region, pick.section, plan=plan,
                                                 staging_db=lane_gains.get(
                                                     (pick.lane, pick.stem.id), 0.0)))
                 for pick, region in played)


def _region_picks(region: Region, selection: Selection) -> list[Pick]:
    return [pick for pick in selection.picks
            if pick.lane == region.lane and pick.section in region.sections]


def _choice(pick: Pick, *, plan: Plan, ratio: float, gain_db: float) -> Choice:
    section = plan.structure[pick.section]
    return Choice(stem_id=pick.stem.id, kit=pick.stem.kit,
                  file=pick.stem.rel_path or Path(pick.stem.path).name,
                  section=section.section, lane=pick.lane, category=pick.stem.category,
                  stretch_ratio=round(ratio, 6), semitones=pick.fit.semitones,
                  gain_db=round(gain_db, 3))
