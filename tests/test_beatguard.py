"""The kick leads (daemon.render.beatguard, daemon.render.groove): the pulse measure, cutting a
lane out of sections, and percussion staged under the kick in four-on-the-floor plans."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from render_helpers import fake_record

from daemon.categories import load_categories
from daemon.compose.plan import Plan, Section
from daemon.render.beatguard import lead, without
from daemon.render.fit import Fit
from daemon.render.groove import KICK_HEADROOM_DB, kick_loudness, lane_target
from daemon.render.select import Pick
from daemon.render.sequence import Region

TABLE = load_categories(Path(__file__).resolve().parents[1] / "rules")
RATE = 22050


def clicks(per_bar: int, *, bpm: float = 120.0, bars: int = 16, level: float = 1.0,
           offset: float = 0.0) -> np.ndarray:
    """Short noise bursts `per_bar` times a bar, evenly spaced, `offset` bars late."""
    rng = np.random.default_rng(per_bar)
    bar = 4 * 60.0 / bpm
    audio = np.zeros((2, int(bars * bar * RATE) + RATE))
    for index in range(bars * per_bar):
        start = int((index / per_bar + offset) * bar * RATE)
        audio[:, start:start + 200] += level * rng.standard_normal(200) * np.geomspace(1, .01, 200)
    return audio.astype(np.float32)


def test_the_kick_leads_unless_another_pulse_comes_near_it():
    assert lead(clicks(4), RATE, 120.0) is None
    # Five hits a bar out-pulse four, even 6 dB quieter: onset strength is measured in dB.
    five = clicks(5) * np.float32(0.5)
    assert lead(clicks(4) + five, RATE, 120.0) == pytest.approx(150.0, abs=0.5)


def region(lane: str, category: str, sections: tuple[int, ...], plan: Plan) -> Region:
    starts = [*plan.section_starts(), plan.bars]
    pick = Pick(sections[0], lane, category, fake_record(1, category), Fit(1.0, None, 0, 1, 1))
    return Region(lane, category, pick, sections, starts[sections[0]], starts[sections[-1] + 1],
                  "pattern", TABLE[category])


PLAN = Plan(prompt="t", genre="techno", bpm=120.0, key="A minor", seed=1, four_on_floor=True,
            structure=tuple(Section(f"S{n}", 8, 0.8) for n in range(4)))


def test_a_lane_cut_out_of_a_middle_section_becomes_two_regions():
    perc, kick = region("perc", "perc", (0, 1, 2, 3), PLAN), region("kick", "kick", (0, 1, 2, 3),
                                                                  PLAN)
    kept = without([perc, kick], {("perc", 1), ("perc", 3)}, PLAN)
    assert [(r.lane, r.sections, r.start_bar, r.end_bar) for r in kept] == [
        ("kick", (0, 1, 2, 3), 0, 32), ("perc", (0,), 0, 8), ("perc", (2,), 16, 24)]


def test_percussion_is_staged_under_the_kick_in_four_on_the_floor_plans():
    lanes = [region("kick", "kick", (0,), PLAN), region("drums", "drum_loop", (0,), PLAN),
             region("hihat", "hihat", (0,), PLAN), region("bass", "bass", (0,), PLAN)]
    kick = kick_loudness(lanes)
    assert kick == TABLE["kick"].loudness
    targets = {r.lane: lane_target(r, plan=PLAN, kick=kick) for r in lanes}
    assert targets["drums"] == kick - KICK_HEADROOM_DB < TABLE["drum_loop"].loudness
    assert targets["hihat"] == TABLE["hihat"].loudness  # already well under the kick
    assert targets["bass"] == TABLE["bass"].loudness  # not percussion
    free = replace(PLAN, four_on_floor=False)
    assert lane_target(lanes[1], plan=free, kick=kick) == TABLE["drum_loop"].loudness
