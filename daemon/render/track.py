"""`RenderedTrack`: everything a render produced, for the writers of its outputs.

`render_plan` returns one; each writer in `daemon.render.outputs` takes it and writes one file
(the WAV, the report, the lanes, the picture, the MIDI file, the DAW project). The mastered
bus is held at full length; single lanes are not: `lane_parts` renders a lane region by region
on demand, exactly as the mix rendered it, so a writer holds one region at a time however long
the track and however many lanes it has.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daemon.compose.plan import Plan
from daemon.config import RenderSettings
from daemon.render.export import Cue
from daemon.render.master import MasterResult
from daemon.render.mix import stage_region
from daemon.render.patterns import GenrePattern
from daemon.render.select import Pick
from daemon.render.sequence import Grid, Region, render_region


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
class RenderedTrack:
    """A rendered plan: the arrangement, the audio it was made of and the mastered result.

    Attributes
    ----------
    plan : Plan
        What was rendered.
    settings : RenderSettings
        Sample rate, bit depth and the mastering targets it was rendered with.
    grid : Grid
        The bar grid at the output sample rate.
    pattern : GenrePattern
        The step patterns the one-shots played.
    drum_notes : mapping
        Pattern instrument → General MIDI drum note (``rules/midi.toml``).
    regions : tuple of Region
        Who plays what where, ordered by start bar then lane.
    sources : mapping
        Source key (`source_key`) → conformed audio, ``(2, n)`` float32 at the output rate.
    lane_gain_db : mapping
        (lane, stem id) → staging gain in dB.
    lane_peak : mapping
        Lane → largest absolute sample it added to the mix (linear, before mastering).
    kicks : np.ndarray
        Sample positions the sidechain ducked at (int64; empty without sidechain).
    bus : np.ndarray
        The mastered track, ``(2, n)`` float32, n = ``grid.bar(plan.bars)``.
    mastering : MasterResult
        Measured loudness (LUFS) and true peak (dBTP) of `bus`, and the static gain applied.
    choices : tuple of Choice
        What played where, by section then lane (the report's "stems").
    fallbacks, notes : tuple of str
        What the render could not do as planned, and what it did beyond the plan.
    selection : mapping
        Why each lane plays what it plays (`daemon.render.explain.explain`): the backbone,
        each lane's stem with its score breakdown and runner-up, the labels overridden.
    """

    plan: Plan
    settings: RenderSettings
    grid: Grid
    pattern: GenrePattern
    drum_notes: Mapping[str, int]
    regions: tuple[Region, ...]
    sources: Mapping[tuple, np.ndarray]
    lane_gain_db: Mapping[tuple[str, int], float]
    lane_peak: Mapping[str, float]
    kicks: np.ndarray
    bus: np.ndarray
    mastering: MasterResult
    choices: tuple[Choice, ...]
    fallbacks: tuple[str, ...]
    notes: tuple[str, ...]
    selection: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sample_rate(self) -> int:
        return self.grid.sample_rate

    @property
    def frames(self) -> int:
        """Length of the track in samples."""
        return int(self.bus.shape[1])

    @property
    def duration(self) -> float:
        """Length of the track in seconds."""
        return self.frames / self.sample_rate

    @property
    def lanes(self) -> tuple[str, ...]:
        """Lane names in the order they first play (ties by name): the row order of every
        output."""
        return tuple(dict.fromkeys(region.lane for region in self.regions))

    def lane_regions(self, lane: str) -> tuple[Region, ...]:
        """The lane's regions in time order (they never overlap)."""
        return tuple(region for region in self.regions if region.lane == lane)

    def source(self, region: Region) -> np.ndarray:
        """The conformed audio the region plays, ``(2, n)`` float32."""
        return self.sources[source_key(region.pick)]

    def region_audio(self, region: Region) -> np.ndarray:
        """The region at mix level, as the mix added it to the bus: ``(2, n)`` float32, sample
        0 at ``grid.bar(region.start_bar)``, n to its end bar. Staging gain, section energy,
        fades and ducking are applied; section rides, sweeps and mastering (which act on the
        whole mix) are not."""
        audio = render_region(region, self.source(region), grid=self.grid, plan=self.plan,
                              pattern=self.pattern)
        stage_region(audio, region, gain_db=self.lane_gain_db[(region.lane,
                                                                region.pick.stem.id)],
                     grid=self.grid, plan=self.plan, kicks=self.kicks)
        return audio

    def lane_parts(self, lane: str) -> Iterator[tuple[int, np.ndarray]]:
        """(first sample, `region_audio`) of each region of `lane`, in time order, rendered
        one at a time as the caller asks for them."""
        for region in self.lane_regions(lane):
            yield self.grid.bar(region.start_bar), self.region_audio(region)

    def section_cues(self) -> list[Cue]:
        """One cue per section start, named after the section."""
        return [Cue(self.grid.bar(start), section.section)
                for start, section in zip(self.plan.section_starts(), self.plan.structure)]


def source_key(pick: Pick) -> tuple:
    """What makes two picks share one conformed source: the stem, its key shift and the tempo
    it is read at."""
    return pick.stem.id, pick.fit.semitones, pick.fit.source_bpm
