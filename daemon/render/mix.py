"""Mix regions into one stereo bus: gain staging, energy, fades, sidechain, transitions.

Each lane is gain-staged to its category's ``loudness`` (measured on the first bars it plays),
then scaled by each section's energy. A region's gain is a piecewise-linear envelope: short
fades at its edges so nothing clicks, a one-bar fade-in for ``sustained`` layers entering
outside a drop, smooth ramps where the energy changes. Lanes of ``ducked`` categories duck
under the kick when sidechaining is on. The traits come from rules/categories.toml through
`Region.traits`. Regions are processed one at a
time, so only the bus is ever held at full length; `stage_region` is the one place a region
reaches mix level, so an exported lane is rendered exactly as it was mixed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import sosfilt

from daemon.compose.plan import Plan
from daemon.config import RenderSettings
from daemon.render.groove import kick_loudness, lane_target
from daemon.render.master import integrated_loudness
from daemon.render.patterns import GenrePattern
from daemon.render.sections import drop_sections
from daemon.render.sequence import (
    Grid,
    Region,
    instrument_for,
    kick_positions,
    render_region,
    sound_key,
)

MAX_LANE_GAIN_DB = 24.0  # a stem needing more than this is nearly silent: do not blow it up
PROBE_BARS = 8  # bars measured to gain-stage a lane
ENERGY_RANGE_DB = 6.0  # a section at energy 0 plays this much quieter than one at energy 1
EDGE_FADE_SECONDS = 0.005  # every region edge: long enough to never click, short for drums
SECTION_RAMP_SECONDS = 0.02  # level change between two sections inside one region
LAYER_FADE_BARS = 1.0  # sustained layers entering outside a drop fade in over a bar
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
    lane_peak: dict[str, float]  # lane → largest |sample| it adds to the bus (linear)
    kicks: np.ndarray  # sample positions the sidechain ducks at (empty without sidechain)
    notes: tuple[str, ...]
    rides_db: tuple[float, ...]  # per section: the level ride applied after staging


def energy_gain_db(energy: float) -> float:
    """Level of a section relative to full energy."""
    return ENERGY_RANGE_DB * (energy - 1.0)


def section_gain_db(region: Region, section: int, *, staging_db: float, plan: Plan) -> float:
    """The gain (dB) the mix gives `region` in `section`: its lane's staging gain, the
    section's energy level and the region's trim there."""
    return (staging_db + energy_gain_db(plan.structure[section].energy)
            + region.trim_db(section))


def mix_regions(regions: Sequence[Region], *, source_for: Callable[[Region], np.ndarray],
                grid: Grid, plan: Plan, pattern: GenrePattern, settings: RenderSettings,
                trims: Mapping[str, float] | None = None,
                measured: dict[tuple, float] | None = None) -> MixResult:
    """Render every region at mix level (`stage_region`) and add it to a new bus, then ride
    the sections towards the energy curve and sweep into the drops.

    Parameters
    ----------
    regions : sequence of Region
        What plays where; regions of one lane never overlap.
    source_for : callable
        Region → its conformed source, ``(2, n)`` float32 at ``grid.sample_rate``.
    grid, plan, pattern, settings
        The bar grid, the plan, the genre's step patterns and the render settings
        (``settings.sidechain`` switches the ducking on).
    trims : mapping, optional
        Lane → dB added to its staging gain (`daemon.render.beatguard` keeps a backbeat
        under the kick this way).
    measured : dict, optional
        Lane gains measured by earlier mixes of the same regions, filled as it goes: the
        beat guard mixes a track several times, and a region sounds the same each time.

    Returns
    -------
    MixResult
        The ``(2, grid.bar(plan.bars))`` float32 bus and what is needed to render any lane
        again exactly as it was mixed (staging gains, sidechain trigger positions).
    """
    bus = np.zeros((2, grid.bar(plan.bars)), dtype=np.float32)
    kicks = (kick_positions(regions, grid=grid, plan=plan, pattern=pattern)
             if settings.sidechain else np.zeros(0, dtype=np.int64))
    gains: dict[tuple[str, int], float] = {}
    kick = kick_loudness(regions)  # four on the floor: percussion stays under the kick
    peaks: dict[str, float] = {}
    measured = {} if measured is None else measured
    # Lane by lane, in time order: a lane's staging gain is measured on its first region.
    for region in sorted(regions, key=lambda r: (r.lane, r.start_bar)):
        audio = render_region(region, source_for(region), grid=grid, plan=plan,
                              pattern=pattern)
        key = (region.lane, region.pick.stem.id)
        if key not in gains:
            # patterns.toml's level trim keeps parts that fight the beat under the kick.
            trim = pattern.level(instrument_for(region)) if region.mode == "pattern" else 0.0
            trim += (trims or {}).get(region.lane, 0.0)
            probe = (sound_key(region), kick)
            if probe not in measured:
                measured[probe] = lane_gain_db(audio, target_lufs=lane_target(
                    region, plan=plan, kick=kick), sample_rate=grid.sample_rate, grid=grid)
            gains[key] = trim + measured[probe]
        stage_region(audio, region, gain_db=gains[key], grid=grid, plan=plan, kicks=kicks)
        origin = grid.bar(region.start_bar)
        bus[:, origin:origin + audio.shape[1]] += audio
        # max and -min: no temporary as large as the region, unlike np.abs
        peaks[region.lane] = max(peaks.get(region.lane, 0.0), float(audio.max(initial=0.0)),
                                 -float(audio.min(initial=0.0)))
    rides = ride_sections(bus, grid=grid, plan=plan)
    notes = [f"level of {section.section} ridden {ride:+.1f} dB towards the energy curve"
             for section, ride in zip(plan.structure, rides) if abs(ride) >= 1.0]
    for drop in sorted(drop_sections(plan) - {0}):
        if sweep_into(bus, grid=grid, plan=plan, drop=drop):
            notes.append(f"high-pass sweep into {plan.structure[drop].section}")
    return MixResult(bus, gains, peaks, kicks, tuple(notes), tuple(rides))


def stage_region(audio: np.ndarray, region: Region, *, gain_db: float, grid: Grid, plan: Plan,
                 kicks: np.ndarray) -> None:
    """Bring a rendered region to mix level, in place: its envelope (staging gain, section
    energy, fades) and, for a ducked category, the sidechain dip at every kick in `kicks`.

    Parameters
    ----------
    audio : np.ndarray
        ``(2, n)`` float32 from `render_region`; sample 0 is the region's first bar.
    gain_db : float
        The lane's staging gain for this stem (dB).
    kicks : np.ndarray
        Track sample positions of the kicks (int64, sorted); empty: no ducking.
    """
    xs, ys = envelope_points(region, gain_db=gain_db, grid=grid, plan=plan)
    duck = kicks.size > 0 and region.traits.ducked
    origin = grid.bar(region.start_bar)
    # Block by block: the gain curves are never held at the region's full length.
    for start in range(0, audio.shape[1], BLOCK):
        stop = min(audio.shape[1], start + BLOCK)
        gain = envelope_block(xs, ys, start=start, stop=stop)
        if duck:
            gain = gain * duck_gain(kicks, start=origin + start, stop=origin + stop,
                                    sample_rate=grid.sample_rate)
        audio[:, start:stop] *= gain


def lane_gain_db(audio: np.ndarray, *, target_lufs: float, sample_rate: int,
                 grid: Grid) -> float:
    """Gain (dB) that brings the lane's first `PROBE_BARS` bars to `target_lufs` (its
    category's ``loudness``), within ±`MAX_LANE_GAIN_DB`; 0 for a silent lane."""
    probe = audio[:, :grid.bar(PROBE_BARS)]
    loudness = integrated_loudness(probe, sample_rate)
    if not np.isfinite(loudness):
        return 0.0
    return float(np.clip(target_lufs - loudness, -MAX_LANE_GAIN_DB, MAX_LANE_GAIN_DB))


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
    levels = [10.0 ** (section_gain_db(region, i, staging_db=gain_db, plan=plan) / 20.0)
              for i in region.sections]
    edge = round(EDGE_FADE_SECONDS * grid.sample_rate)
    layer = round(LAYER_FADE_BARS * grid.samples_per_bar)
    at_drop = region.sections[0] in drop_sections(plan) and region.start_bar > 0
    fade_in = layer if region.traits.sustained and not at_drop else edge
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


def _duck_shape(sample_rate: int) -> np.ndarray:
    """Ducking amount after a kick: a linear attack, then an exponential recovery that is
    shifted and scaled to reach exactly 0 at its end (no step when it stops)."""
    times = np.arange(round(DUCK_LENGTH_SECONDS * sample_rate)) / sample_rate
    decay = np.exp(-np.maximum(0.0, times - DUCK_ATTACK_SECONDS) / DUCK_RELEASE_SECONDS)
    decay = (decay - decay[-1]) / (1.0 - decay[-1])
    return (np.minimum(times / DUCK_ATTACK_SECONDS, 1.0) * decay).astype(np.float32)

