"""Mix regions into one stereo bus: gain staging, energy, fades, sidechain, transitions.

Each lane is gain-staged to a loudness target for its category (`CATEGORY_LOUDNESS`,
measured on the first bars it plays), then scaled by each section's energy. A region's gain
is a piecewise-linear envelope: short fades at its edges so nothing clicks, a one-bar fade-in
for sustained layers entering outside a drop, smooth ramps where the energy changes.
Sustained lanes duck under the kick when sidechaining is on. Regions are processed one at a
time and added to the bus in blocks, so only the bus is ever held at full length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import numpy as np
from scipy.signal import sosfilt

from daemon.compose.plan import Plan
from daemon.config import RenderSettings
from daemon.render.export import WavWriter
from daemon.render.master import integrated_loudness
from daemon.render.patterns import GenrePattern
from daemon.render.sequence import Grid, Region, drop_sections, kick_positions, render_region

#: Pre-master loudness of a lane playing alone (LUFS): kick and bass carry the track,
#: hats and atmospheres sit underneath. Mastering moves the whole mix afterwards.
CATEGORY_LOUDNESS = {"kick": -12.0, "drum_loop": -13.0, "bass": -14.0, "snare": -17.0,
                     "clap": -17.0, "hihat": -22.0, "open_hat": -23.0, "cymbal": -24.0,
                     "perc": -21.0, "tom": -20.0, "chord": -19.0, "stab": -19.0,
                     "keys": -19.0, "pad": -21.0, "synth": -18.0, "lead": -17.0,
                     "arp": -20.0, "pluck": -20.0, "vocal": -17.0, "atmo": -24.0, "fx": -22.0}
DEFAULT_LOUDNESS = -20.0
MAX_LANE_GAIN_DB = 24.0  # a stem needing more than this is nearly silent: do not blow it up
PROBE_BARS = 8  # bars measured to gain-stage a lane
ENERGY_RANGE_DB = 6.0  # a section at energy 0 plays this much quieter than one at energy 1
EDGE_FADE_SECONDS = 0.005  # every region edge: long enough to never click, short for drums
SECTION_RAMP_SECONDS = 0.02  # level change between two sections inside one region
LAYER_FADE_BARS = 1.0  # sustained layers entering outside a drop fade in over a bar
SUSTAINED = frozenset({"pad", "atmo", "chord", "keys", "vocal", "drone"})
DUCKED = frozenset({"bass", "pad", "atmo", "chord", "keys", "synth", "drone"})
DUCK_DEPTH_DB = 5.0
DUCK_ATTACK_SECONDS = 0.005
DUCK_RELEASE_SECONDS = 0.08  # time constant of the recovery
DUCK_LENGTH_SECONDS = 0.3  # the recovery is complete (and exactly 1) after this
RIDE_STRENGTH = 0.7  # share of its distance to the energy line a section moves
RIDE_MAX_DB = 6.0  # no section is ridden further than this (times the strength)
RIDE_MIN_SLOPE_DB = 8.0  # the energy line rises at least this much from energy 0 to 1
RIDE_RAMP_SECONDS = 0.05
SWEEP_BARS = 2  # high-pass sweep over the last bars before a drop
SWEEP_HZ = (30.0, 1500.0)  # cutoff at the start and the end of the sweep
SWEEP_STEP = 512  # samples per filter update (12 ms at 44.1 kHz)
BLOCK = 1 << 18  # samples per processing block (~6 s at 44.1 kHz)


@dataclass(frozen=True)
class MixResult:
    bus: np.ndarray  # (2, n) float32, the whole track before mastering
    lane_gain_db: dict[tuple[str, int], float]  # (lane, stem id) → staging gain
    notes: tuple[str, ...]


def energy_gain_db(energy: float) -> float:
    """Level of a section relative to full energy."""
    return ENERGY_RANGE_DB * (energy - 1.0)


def mix_regions(regions: Sequence[Region], *, source_for: Callable[[Region], np.ndarray],
                grid: Grid, plan: Plan, pattern: GenrePattern, settings: RenderSettings,
                lanes_dir: Path | None = None) -> MixResult:
    """Render every region and add it to a new bus; optionally write one WAV per lane."""
    total = grid.bar(plan.bars)
    bus = np.zeros((2, total), dtype=np.float32)
    kicks = (kick_positions(regions, grid=grid, plan=plan, pattern=pattern)
             if settings.sidechain else np.zeros(0, dtype=np.int64))
    gains: dict[tuple[str, int], float] = {}
    ordered = sorted(regions, key=lambda r: (r.lane, r.start_bar))
    for lane, lane_regions in groupby(ordered, key=lambda r: r.lane):
        writer = None
        if lanes_dir is not None:
            writer = WavWriter(lanes_dir / f"{lane}.wav", sample_rate=grid.sample_rate,
                               bit_depth=32)
        with writer or nullcontext():
            for region in lane_regions:
                audio = render_region(region, source_for(region), grid=grid, plan=plan,
                                      pattern=pattern)
                key = (lane, region.pick.stem.id)
                if key not in gains:
                    gains[key] = lane_gain_db(audio, category=region.category,
                                              sample_rate=grid.sample_rate, grid=grid)
                ducked = kicks if region.category in DUCKED else None
                _add_region(bus, audio, region, gain_db=gains[key], grid=grid, plan=plan,
                            kicks=ducked, writer=writer)
            if writer is not None:
                writer.write_silence(total - writer.frames)
    rides = ride_sections(bus, grid=grid, plan=plan)
    notes = [f"level of {section.section} ridden {ride:+.1f} dB towards the energy curve"
             for section, ride in zip(plan.structure, rides) if abs(ride) >= 1.0]
    for drop in sorted(drop_sections(plan) - {0}):
        if sweep_into(bus, grid=grid, plan=plan, drop=drop):
            notes.append(f"high-pass sweep into {plan.structure[drop].section}")
    return MixResult(bus, gains, tuple(notes))


def lane_gain_db(audio: np.ndarray, *, category: str, sample_rate: int, grid: Grid) -> float:
    """Gain that brings the lane's first `PROBE_BARS` bars to its category's loudness."""
    probe = audio[:, :grid.bar(PROBE_BARS)]
    loudness = integrated_loudness(probe, sample_rate)
    if not np.isfinite(loudness):
        return 0.0
    target = CATEGORY_LOUDNESS.get(category, DEFAULT_LOUDNESS)
    return float(np.clip(target - loudness, -MAX_LANE_GAIN_DB, MAX_LANE_GAIN_DB))


def ride_sections(bus: np.ndarray, *, grid: Grid, plan: Plan) -> list[float]:
    """Ride each section's level (dB, returned) part of the way towards a straight line of
    loudness over energy, so a drumless breakdown does not fall below a quieter intro.

    The line is fitted to the sections' measured loudness, with at least
    `RIDE_MIN_SLOPE_DB` per unit of energy; each section moves `RIDE_STRENGTH` of its
    distance to it, at most `RIDE_MAX_DB`, with short ramps between sections.
    """
    edges = [grid.bar(start) for start in plan.section_starts()] + [grid.bar(plan.bars)]
    loudness = np.array([integrated_loudness(bus[:, a:b], grid.sample_rate)
                         for a, b in zip(edges[:-1], edges[1:])])
    energy = np.array([section.energy for section in plan.structure])
    known = np.isfinite(loudness)
    if known.sum() < 2 or np.ptp(energy[known]) == 0:
        return [0.0] * len(energy)
    slope = max(RIDE_MIN_SLOPE_DB, float(np.polyfit(energy[known], loudness[known], 1)[0]))
    line = np.mean(loudness[known] - slope * energy[known]) + slope * energy
    rides = np.where(known, RIDE_STRENGTH * np.clip(line - loudness, -RIDE_MAX_DB, RIDE_MAX_DB),
                     0.0)
    gains = 10.0 ** (rides / 20.0)
    ramp = round(RIDE_RAMP_SECONDS * grid.sample_rate)
    xs, ys = [0], [gains[0]]
    for index in range(1, len(gains)):
        xs += [edges[index] - ramp, edges[index]]
        ys += [gains[index - 1], gains[index]]
    for start in range(0, bus.shape[1], BLOCK):
        stop = min(bus.shape[1], start + BLOCK)
        bus[:, start:stop] *= envelope_block(xs, ys, start=start, stop=stop)
    return [round(float(ride), 2) for ride in rides]


def envelope_points(region: Region, *, gain_db: float, grid: Grid,
                    plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Breakpoints (sample offsets in the region, linear gains) of the region's envelope."""
    starts = plan.section_starts()
    origin = grid.bar(region.start_bar)
    edges = [grid.bar(starts[i]) - origin for i in region.sections]
    edges.append(grid.bar(region.end_bar) - origin)
    levels = [10.0 ** ((gain_db + energy_gain_db(plan.structure[i].energy)) / 20.0)
              for i in region.sections]
    edge = round(EDGE_FADE_SECONDS * grid.sample_rate)
    layer = round(LAYER_FADE_BARS * grid.samples_per_bar)
    at_drop = region.sections[0] in drop_sections(plan) and region.start_bar > 0
    fade_in = layer if region.category in SUSTAINED and not at_drop else edge
    fade_out = layer if region.end_bar == plan.bars else edge
    fade_in = min(fade_in, (edges[1] - edges[0]) // 2)
    fade_out = min(fade_out, (edges[-1] - edges[-2]) // 2)
    ramp = round(SECTION_RAMP_SECONDS * grid.sample_rate)
    xs, ys = [0, fade_in], [0.0, levels[0]]
    for index in range(1, len(levels)):
        xs += [edges[index] - ramp, edges[index]]
        ys += [levels[index - 1], levels[index]]
    xs += [edges[-1] - fade_out, edges[-1]]
    ys += [levels[-1], 0.0]
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def envelope_block(xs: Sequence[float], ys: Sequence[float], *, start: int,
                   stop: int) -> np.ndarray | np.float32:
    """Samples start..stop of the piecewise-linear envelope through (xs, ys); a scalar when
    the block lies on one flat segment (most blocks: it saves the interpolation)."""
    segment = int(np.searchsorted(xs, start, side="right"))
    if 0 < segment < len(xs) and xs[segment] >= stop and ys[segment - 1] == ys[segment]:
        return np.float32(ys[segment])
    return np.interp(np.arange(start, stop), xs, ys).astype(np.float32)


def duck_gain(kicks: np.ndarray, *, start: int, stop: int, sample_rate: int) -> np.ndarray:
    """Sidechain gain for samples start..stop: down by `DUCK_DEPTH_DB` at each kick."""
    shape = _duck_shape(sample_rate)
    amount = np.zeros(stop - start + shape.size, dtype=np.float32)
    first, last = np.searchsorted(kicks, [start - shape.size, stop])
    for kick in kicks[first:last]:
        offset = kick - start + shape.size  # amount[shape.size] is sample `start`
        amount[offset:offset + shape.size] += shape[:max(0, amount.size - offset)]
    depth = 1.0 - 10.0 ** (-DUCK_DEPTH_DB / 20.0)
    return 1.0 - np.float32(depth) * np.minimum(amount[shape.size:], 1.0)


def sweep_into(bus: np.ndarray, *, grid: Grid, plan: Plan, drop: int) -> bool:
    """High-pass sweep (rising cutoff) over the bars before section `drop`, crossfading back
    to the dry mix in the last few ms so the drop hits unfiltered. Returns False when the
    section before the drop is too short to sweep."""
    starts = plan.section_starts()
    end = grid.bar(starts[drop])
    begin = grid.bar(max(starts[drop - 1], starts[drop] - SWEEP_BARS))
    if end - begin < 4 * SWEEP_STEP:
        return False
    dry = bus[:, begin:end].copy()
    wet = np.empty_like(dry)
    cutoffs = np.geomspace(*SWEEP_HZ, num=-(-dry.shape[1] // SWEEP_STEP))
    state = np.zeros((1, 2, 2))
    for index, sos in enumerate(highpass_sections(cutoffs, sample_rate=grid.sample_rate)):
        part = slice(index * SWEEP_STEP, (index + 1) * SWEEP_STEP)
        wet[:, part], state = sosfilt(sos[None, :], dry[:, part], axis=1, zi=state)
    back = round(EDGE_FADE_SECONDS * grid.sample_rate)
    weight = np.ones(dry.shape[1], dtype=np.float32)
    weight[-back:] = np.linspace(1.0, 0.0, back, dtype=np.float32)
    bus[:, begin:end] = weight * wet + (1.0 - weight) * dry
    return True


def highpass_sections(cutoffs: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """Second-order Butterworth high-pass biquads (one sos row per cutoff), from the bilinear
    transform with pre-warping (the RBJ cookbook form with Q = 1/sqrt 2)."""
    omega = 2.0 * np.pi * np.asarray(cutoffs) / sample_rate
    alpha = np.sin(omega) / np.sqrt(2.0)
    cos = np.cos(omega)
    a0 = 1.0 + alpha
    b = np.stack([(1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0], axis=1) / a0[:, None]
    a = np.stack([np.ones_like(cos), -2.0 * cos / a0, (1.0 - alpha) / a0], axis=1)
    return np.hstack([b, a])


def _add_region(bus: np.ndarray, audio: np.ndarray, region: Region, *, gain_db: float,
                grid: Grid, plan: Plan, kicks: np.ndarray | None,
                writer: WavWriter | None) -> None:
    """Apply the region's envelope (and ducking) block by block and add it to the bus."""
    xs, ys = envelope_points(region, gain_db=gain_db, grid=grid, plan=plan)
    origin = grid.bar(region.start_bar)
    if writer is not None:
        writer.write_silence(origin - writer.frames)
    for start in range(0, audio.shape[1], BLOCK):
        stop = min(audio.shape[1], start + BLOCK)
        gain = envelope_block(xs, ys, start=start, stop=stop)
        if kicks is not None and kicks.size:
            gain *= duck_gain(kicks, start=origin + start, stop=origin + stop,
                              sample_rate=grid.sample_rate)
        block = audio[:, start:stop] * gain
        bus[:, origin + start:origin + stop] += block
        if writer is not None:
            writer.write(block)


def _duck_shape(sample_rate: int) -> np.ndarray:
    """Ducking amount after a kick: a linear attack, then an exponential recovery that is
    shifted and scaled to reach exactly 0 at its end (no step when it stops)."""
    times = np.arange(round(DUCK_LENGTH_SECONDS * sample_rate)) / sample_rate
    decay = np.exp(-np.maximum(0.0, times - DUCK_ATTACK_SECONDS) / DUCK_RELEASE_SECONDS)
    decay = (decay - decay[-1]) / (1.0 - decay[-1])
    return (np.minimum(times / DUCK_ATTACK_SECONDS, 1.0) * decay).astype(np.float32)

