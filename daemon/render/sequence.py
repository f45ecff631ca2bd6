"""Lay stems out in time: regions on the bar grid, loops tiled, one-shots on step patterns.

A *region* is a run of consecutive sections in which one lane plays one stem. Every position
is computed from the bar or step index against the float number of samples per bar
(``round(index * samples_per_step)``), never accumulated, so nothing drifts off the grid over
a long track.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from daemon.compose.plan import BEATS_PER_BAR, Plan
from daemon.render.patterns import STEPS_PER_BAR, GenrePattern
from daemon.store.records import StemRecord

if TYPE_CHECKING:  # select imports this module; Region only names Pick
    from daemon.render.select import Pick

#: Lane category → pattern instrument for one-shots (tonal hits share the "stab" pattern).
INSTRUMENTS = {"kick": "kick", "clap": "clap", "snare": "snare", "hihat": "hihat",
               "open_hat": "open_hat", "cymbal": "cymbal", "ride": "cymbal", "perc": "perc",
               "tom": "tom", "bass": "bass", "chord": "stab", "stab": "stab", "synth": "stab",
               "lead": "stab", "keys": "stab", "pluck": "stab", "arp": "stab"}
GHOST_VELOCITY = 0.5  # hits softer than this are ghost notes ...
QUIET_ENERGY = 0.4  # ... and are left out of sections quieter than this
HIT_GAIN_SPREAD_DB = 0.5  # standard deviation of the per-hit gain variation
HIT_GAIN_LIMIT_DB = 1.5  # the variation never exceeds this
CHOKE_SECONDS = 0.002  # a hit cut by the next one fades over 2 ms instead of clicking
DROP_ENERGY_JUMP = 0.25  # an energy rise this large into a loud section makes it a drop
DROP_MIN_ENERGY = 0.7


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


def stem_words(stem: StemRecord) -> set[str]:
    """The stem's tags and the words of its file name ("HiHat_Open_02" → hi, hat, open, 02):
    names say things analysis cannot (open hat, riser)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", stem.rel_path or Path(stem.path).name)
    return {tag.lower() for tag in stem.tags} | set(re.findall(r"[a-z0-9]+", spaced.lower()))


def section_occurrence(name: str) -> str:
    """A section name without its part letter: "Drop 1 B" → "drop 1"."""
    return re.sub(r"\s+[a-z]$", "", name.strip().lower())


def build_regions(plan: Plan, picks: Sequence[Pick]) -> list[Region]:
    """Merge each lane's picks over consecutive sections with the same stem into regions.

    FX lanes get one region per section, so a riser can end exactly at the next drop.
    """
    starts = plan.section_starts()
    drops = drop_sections(plan)
    regions: list[Region] = []
    open_runs: dict[str, list[Pick]] = {}

    def close(run: list[Pick]) -> None:
        first, last = run[0], run[-1]
        end = starts[last.section] + plan.structure[last.section].bars
        mode = _mode(first, before_drop=last.section + 1 in drops)
        regions.append(Region(first.lane, first.category, first, tuple(p.section for p in run),
                              starts[first.section], end, mode))

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
        rng = np.random.default_rng([plan.seed, zlib.crc32(region.lane.encode()),
                                     region.start_bar])
        hits = pattern_hits(region, grid=grid, plan=plan, pattern=pattern, rng=rng)
        return trigger(source, hits, length=length, sample_rate=grid.sample_rate)
    every = 0 if region.mode == "hit" else _phrase_bars(source.shape[1], grid.samples_per_bar)
    bars = range(region.start_bar, region.end_bar, every) if every else [region.start_bar]
    hits = [(grid.bar(bar) - start, 1.0) for bar in bars]
    return trigger(source, hits, length=length, sample_rate=grid.sample_rate)


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

    Each section restarts the pattern at its first bar; quiet sections drop ghost notes; every
    hit gets its velocity times a small seeded gain variation.
    """
    steps = pattern.steps[instrument or instrument_for(region)]
    bars_in_pattern = len(steps) // STEPS_PER_BAR
    origin = grid.bar(region.start_bar)
    starts = plan.section_starts()
    hits = []
    for index in region.sections:
        section = plan.structure[index]
        floor = GHOST_VELOCITY if section.energy < QUIET_ENERGY else 0.0
        for bar in range(section.bars):
            row = steps[(bar % bars_in_pattern) * STEPS_PER_BAR:][:STEPS_PER_BAR]
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
    """The pattern instrument of a one-shot region (an "open" hat plays the open-hat part)."""
    instrument = INSTRUMENTS[region.category]
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


def _mode(pick: Pick, *, before_drop: bool) -> str:
    if pick.category == "fx" and before_drop:
        return "riser"
    if pick.stem.kind == "loop":
        return "loop"
    if pick.category in INSTRUMENTS:
        return "pattern"
    return "hit" if pick.category == "fx" else "phrase"


def _phrase_bars(samples: int, samples_per_bar: float) -> int:
    """Re-trigger period of a long one-shot: the power of two bars that holds it."""
    bars = max(1, int(np.ceil(samples / samples_per_bar)))
    return 1 << (bars - 1).bit_length()
