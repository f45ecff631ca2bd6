"""Lay stems out in time: regions on the bar grid, loops tiled, one-shots on step patterns.

A *region* is a run of consecutive sections in which one lane plays one stem. Every position
is computed from the bar or step index against the float number of samples per bar
(``round(index * samples_per_step)``), never accumulated, so nothing drifts off the grid over
a long track.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daemon.categories import CategoryRule, CategoryTable
from daemon.compose.plan import BEATS_PER_BAR, Plan
from daemon.render.patterns import STEPS_PER_BAR, GenrePattern, is_fill_bar
from daemon.render.sections import drop_sections
from daemon.render.select import Pick, stem_words

GHOST_VELOCITY = 0.5  # hits softer than this are ghost notes ...
QUIET_ENERGY = 0.4  # ... and are left out of sections quieter than this
HIT_GAIN_SPREAD_DB = 0.5  # standard deviation of the per-hit gain variation
HIT_GAIN_LIMIT_DB = 1.5  # the variation never exceeds this
CHOKE_SECONDS = 0.002  # a hit cut by the next one fades over 2 ms instead of clicking


@dataclass(frozen=True)
class Grid:
    """The bar grid of a plan at one sample rate."""

    sample_rate: int
    bpm: float

    @property
    def samples_per_bar(self) -> float:
        return self.sample_rate * BEATS_PER_BAR * 60.0 / self.bpm

    def bar(self, bar: float) -> int:
        """First sample of `bar` (fractional bars allowed)."""
        return round(bar * self.samples_per_bar)

    def step(self, step: float) -> int:
        """First sample of sixteenth-note `step` counted from the start of the track."""
        return round(step * self.samples_per_bar / STEPS_PER_BAR)


@dataclass(frozen=True)
class Region:
    """One lane playing one stem over consecutive sections, and how it is laid out."""

    lane: str
    category: str
    pick: Pick
    sections: tuple[int, ...]
    start_bar: int
    end_bar: int
    mode: str  # "loop", "pattern", "hit" (once), "phrase" (every few bars) or "riser"
    traits: CategoryRule  # of the lane's category: staging, fades, ducking, its pattern
    #: (section, dB) pairs: the region is this much louder (quieter when negative) there
    #: (`daemon.render.beatguard`)
    trims_db: tuple[tuple[int, float], ...] = ()

    def trim_db(self, section: int) -> float:
        """dB added to the region's level in `section` (0 unless trimmed there)."""
        return sum(db for index, db in self.trims_db if index == section)


def build_regions(plan: Plan, picks: Sequence[Pick], *,
                  categories: CategoryTable) -> list[Region]:
    """Merge each lane's picks over consecutive sections with the same stem into regions.

    FX lanes get one region per section, so a riser can end exactly at the next drop. Each
    region carries its lane category's traits from `categories`, so everything downstream
    (mix, lanes, exports) reads them from the region.
    """
    starts = plan.section_starts()
    drops = drop_sections(plan)
    regions: list[Region] = []
    open_runs: dict[str, list[Pick]] = {}

    def close(run: list[Pick]) -> None:
        first, last = run[0], run[-1]
        end = starts[last.section] + plan.structure[last.section].bars
        traits = categories[first.category]
        mode = _mode(first, traits, before_drop=last.section + 1 in drops)
        regions.append(Region(first.lane, first.category, first, tuple(p.section for p in run),
                              starts[first.section], end, mode, traits))

    for pick in sorted(picks, key=lambda p: (p.lane, p.section)):
        run = open_runs.get(pick.lane)
        if run and run[-1].section == pick.section - 1 and run[-1].stem.id == pick.stem.id \
                and pick.category != "fx":
            run.append(pick)
            continue
        if run:
            close(run)
        open_runs[pick.lane] = [pick]
    for run in open_runs.values():
        close(run)
    return sorted(regions, key=lambda r: (r.start_bar, r.lane))


def sound_key(region: Region) -> tuple:
    """What `render_region` makes of `region` depends on this alone (within one render):
    its lane, stem and span. A region cut out of some sections becomes regions with new
    spans; trims apply only in the mix."""
    return region.lane, region.pick.stem.id, region.start_bar, region.end_bar


def render_region(region: Region, source: np.ndarray, *, grid: Grid, plan: Plan,
                  pattern: GenrePattern) -> np.ndarray:
    """The region's audio, ``(2, n)`` float32 from its first to its last sample on the grid."""
    start = grid.bar(region.start_bar)
    length = grid.bar(region.end_bar) - start
    if region.mode == "loop":
        return tile_loop(source, grid=grid, start_bar=region.start_bar, end_bar=region.end_bar)
    if region.mode == "riser":
        return place_at_end(source, length=length)
    if region.mode == "pattern":
        hits = pattern_hits(region, grid=grid, plan=plan, pattern=pattern,
                            rng=pattern_rng(region, plan))
        return trigger(source, hits, length=length, sample_rate=grid.sample_rate)
    every = 0 if region.mode == "hit" else _phrase_bars(source.shape[1], grid.samples_per_bar)
    bars = range(region.start_bar, region.end_bar, every) if every else [region.start_bar]
    hits = [(grid.bar(bar) - start, 1.0) for bar in bars]
    return trigger(source, hits, length=length, sample_rate=grid.sample_rate)


def pattern_rng(region: Region, plan: Plan) -> np.random.Generator:
    """The seeded generator of a pattern region's hit gains: the same for every rendering of
    the region (the mix, an exported lane, the MIDI file)."""
    return np.random.default_rng([plan.seed, zlib.crc32(region.lane.encode()), region.start_bar])


def tile_loop(loop: np.ndarray, *, grid: Grid, start_bar: int, end_bar: int) -> np.ndarray:
    """Repeat a conformed loop from `start_bar` to `end_bar`, every copy starting on its bar."""
    loop_bars = max(1, round(loop.shape[1] / grid.samples_per_bar))
    origin = grid.bar(start_bar)
    out = np.zeros((2, grid.bar(end_bar) - origin), dtype=np.float32)
    for bar in range(start_bar, end_bar, loop_bars):
        begin = grid.bar(bar) - origin
        end = min(grid.bar(bar + loop_bars) - origin, out.shape[1])
        count = min(end - begin, loop.shape[1])
        out[:, begin:begin + count] = loop[:, :count]
        # Rounding makes some slots one sample longer than the loop: wrap around, so the
        # slot never ends in a dropout.
        extra = end - begin - count
        out[:, begin + count:end] = loop[:, :extra]
    return out


def pattern_hits(region: Region, *, grid: Grid, plan: Plan, pattern: GenrePattern,
                 rng: np.random.Generator,
                 instrument: str | None = None) -> list[tuple[int, float]]:
    """(sample offset in the region, gain) of every hit of the region's step pattern.

    Each section restarts the pattern at its first bar and plays the pattern variation the
    plan gives it; in sections with fills, the last bar of every phrase plays the genre's fill
    for the instruments it names (`is_fill_bar`). Quiet sections drop ghost notes; every hit
    gets its velocity times a small seeded gain variation.
    """
    instrument = instrument or instrument_for(region)
    origin = grid.bar(region.start_bar)
    starts = plan.section_starts()
    hits = []
    for index in region.sections:
        section = plan.structure[index]
        floor = GHOST_VELOCITY if section.energy < QUIET_ENERGY else 0.0
        for bar in range(section.bars):
            row = pattern.bar_steps(instrument, bar, variation=section.variation,
                                    fill=section.fills and is_fill_bar(bar, section.bars))
            for step, velocity in enumerate(row):
                if velocity <= floor:
                    continue
                swing = pattern.swing * (step % 2)
                position = grid.step((starts[index] + bar) * STEPS_PER_BAR + step + swing)
                spread = np.clip(rng.normal(0.0, HIT_GAIN_SPREAD_DB), -HIT_GAIN_LIMIT_DB,
                                 HIT_GAIN_LIMIT_DB)
                hits.append((position - origin, velocity * 10.0 ** (spread / 20.0)))
    return hits


def trigger(sample: np.ndarray, hits: Sequence[tuple[int, float]], *, length: int,
            sample_rate: int) -> np.ndarray:
    """Play `sample` at each (offset, gain); a hit is choked (cut with a 2 ms fade) by the next
    one, like a drum machine voice, so tails never pile up."""
    out = np.zeros((2, length), dtype=np.float32)
    ordered = sorted(hits)
    fade = max(1, round(CHOKE_SECONDS * sample_rate))
    for index, (position, gain) in enumerate(ordered):
        stop = ordered[index + 1][0] if index + 1 < len(ordered) else length
        count = min(sample.shape[1], stop - position, length - position)
        if count <= 0 or position < 0:
            continue
        voice = sample[:, :count] * np.float32(gain)
        if count < sample.shape[1]:
            tail = min(fade, count)
            voice[:, count - tail:] *= np.linspace(1.0, 0.0, tail, dtype=np.float32)
        out[:, position:position + count] += voice
    return out


def place_at_end(sample: np.ndarray, *, length: int) -> np.ndarray:
    """Put `sample` so that it ends on the region's last sample (a riser ending at the drop);
    a sample longer than the region loses its beginning."""
    out = np.zeros((2, length), dtype=np.float32)
    count = min(length, sample.shape[1])
    out[:, length - count:] = sample[:, sample.shape[1] - count:]
    return out


def instrument_for(region: Region) -> str:
    """The pattern instrument of a "pattern" region: its category's ``pattern`` trait (an
    "open" hat plays the open-hat part)."""
    instrument = region.traits.pattern
    if instrument is None:
        raise ValueError(f"{region.lane}: category {region.category} has no pattern")
    if instrument == "hihat" and "open" in stem_words(region.pick.stem):
        return "open_hat"
    return instrument


def kick_positions(regions: Sequence[Region], *, grid: Grid, plan: Plan,
                   pattern: GenrePattern) -> np.ndarray:
    """Track sample positions of the kick pattern wherever a kick lane plays (the sidechain
    trigger; kick loops are assumed to follow the genre's kick pattern)."""
    positions = []
    for region in regions:
        if region.category != "kick":
            continue
        rng = np.random.default_rng(0)  # gains are irrelevant here, only positions
        hits = pattern_hits(region, grid=grid, plan=plan, pattern=pattern, rng=rng,
                            instrument="kick")
        positions.extend(grid.bar(region.start_bar) + offset for offset, _ in hits)
    return np.asarray(sorted(positions), dtype=np.int64)


def _mode(pick: Pick, traits: CategoryRule, *, before_drop: bool) -> str:
    if pick.category == "fx" and before_drop:
        return "riser"
    if pick.stem.kind == "loop":
        return "loop"
    if traits.pattern is not None:
        return "pattern"
    return "hit" if pick.category == "fx" else "phrase"


def _phrase_bars(samples: int, samples_per_bar: float) -> int:
    """Re-trigger period of a long one-shot: the power of two bars that holds it."""
    bars = max(1, int(np.ceil(samples / samples_per_bar)))
    return 1 << (bars - 1).bit_length()
