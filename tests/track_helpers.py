"""Render plans the way the engine does, with the repository's rules: a `RenderedTrack`, or
the files of a render (the WAV, the report and the chosen exports)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import cache
from pathlib import Path

from render_helpers import settings

from daemon.categories import CategoryTable, load_categories
from daemon.compose.plan import Plan
from daemon.config import RenderSettings
from daemon.render.drum_notes import load_drum_notes
from daemon.render.outputs import RenderResult, write_outputs
from daemon.render.patterns import PatternRules, load_patterns
from daemon.render.render import render_plan
from daemon.render.track import RenderedTrack
from daemon.store.records import StemRecord

RULES = Path(__file__).resolve().parents[1] / "rules"


@cache
def rules() -> tuple[PatternRules, dict[str, int], CategoryTable]:
    """Patterns, drum notes and category traits of rules/, read once per session."""
    return load_patterns(RULES), dict(load_drum_notes(RULES)), load_categories(RULES)


def render_track(plan: Plan, stems: Sequence[StemRecord], *, cache_dir: Path,
                 render_settings: RenderSettings | None = None) -> RenderedTrack:
    patterns, drum_notes, categories = rules()
    return render_plan(plan, stems, settings=render_settings or settings(),
                       cache_dir=cache_dir, patterns=patterns, drum_notes=drum_notes,
                       categories=categories)


def render_files(plan: Plan, stems: Sequence[StemRecord], *, out_wav: Path, cache_dir: Path,
                 exports: Collection[str] = (),
                 render_settings: RenderSettings | None = None) -> RenderResult:
    track = render_track(plan, stems, cache_dir=cache_dir, render_settings=render_settings)
    return write_outputs(track, out_wav, exports=exports)
