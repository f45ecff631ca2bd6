"""The kick leads (daemon.render.beatguard, daemon.render.groove): the pulse measure, cutting a
lane out of sections, lowering the backbeat that out-pulses the kick, and percussion staged
under the kick in four-on-the-floor plans."""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from render_helpers import fake_record, settings
from stored_kits import kit_samples

from daemon.categories import load_categories
from daemon.compose.plan import Plan, Section
from daemon.render import beatguard
from daemon.render.beatguard import (
    Hearing,
    lead,
    lead_ratio,
    mix_leading_kick,
    staged_region,
    trimmed,
    without,
)
from daemon.render.fit import Fit
from daemon.render.groove import KICK_HEADROOM_DB, kick_loudness, lane_target
from daemon.render.mix import mix_regions
from daemon.render.patterns import load_patterns
from daemon.render.select import Pick
from daemon.render.sequence import Grid, Region

# The fidelity bench's measure judges the mix, independently of the guard's own.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from fidelity import kick_leads  # noqa: E402

RULES = Path(__file__).resolve().parents[1] / "rules"
TABLE = load_categories(RULES)
RATE = 22050


def clicks(per_bar: int, *, bpm: float = 120.0, bars: int = 16, level: float = 1.0,
           offset: float = 0.0, rate: int = RATE) -> np.ndarray:
    """Short noise bursts `per_bar` times a bar, evenly spaced, `offset` bars late."""
    rng = np.random.default_rng(per_bar)
    bar = 4 * 60.0 / bpm
    audio = np.zeros((2, int(bars * bar * rate) + rate))
    for index in range(bars * per_bar):
        start = int((index / per_bar + offset) * bar * rate)
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


def groove(genre: str, sounds: tuple[str, ...], *, energy: float,
           perc_loop: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """The guard's notes and the mix of `groove_parts`."""
    regions, setup = groove_parts(genre, sounds, energy=energy, perc_loop=perc_loop)
    mixed, _, notes = mix_leading_kick(regions, **setup)
    return notes, mixed.bus


def groove_parts(genre: str, sounds: tuple[str, ...], *, energy: float,
                 perc_loop: np.ndarray | None = None) -> tuple[list[Region], dict]:
    """The regions of an 8-bar section of `genre`'s patterns at 124 BPM, played by `sounds`
    (file names of the synthesised house kit, one lane each; loops tile) and by `perc_loop`
    (a one-bar percussion loop at the kit's 44.1 kHz) when given, and the keywords that mix
    them (`mix_leading_kick`, `mix_regions`)."""
    kit = {Path(sample.name).stem: sample for sample in kit_samples(124.0, "G minor", 2)}
    plan = Plan(prompt="t", genre=genre, bpm=124.0, key="G minor", seed=1, four_on_floor=True,
                structure=(Section("Groove", 8, energy),))
    regions, sources = [], {}
    parts = [(kit[sound].name, kit[sound].category, kit[sound].kind, kit[sound].audio)
             for sound in sounds]
    if perc_loop is not None:
        parts.append(("perc_loop.wav", "perc", "loop", perc_loop))
    for number, (name, category, kind, audio) in enumerate(parts, start=1):
        stem = replace(fake_record(number, category, kind=kind), rel_path=name)
        pick = Pick(0, category, category, stem, Fit(1.0, None, 0, 1, 1))
        regions.append(Region(category, category, pick, (0,), 0, 8,
                              "loop" if kind == "loop" else "pattern", TABLE[category]))
        sources[category] = audio.astype(np.float32)
    return regions, {"source_for": lambda region: sources[region.lane],
                     "grid": Grid(kit[sounds[0]].sample_rate, plan.bpm), "plan": plan,
                     "pattern": load_patterns(RULES).for_genre(genre), "settings": settings()}


def test_a_clap_out_pulsing_the_kick_at_one_and_a_half_times_the_tempo_is_lowered():
    # House: open hats and a sub bass between the beats cancel the kick's pulse; the clap on
    # 2 and 4 then pulses strongest at 186 BPM (1.5 x 124), its backbeat's second pulse.
    notes, bus = groove("house", ("TE_Kick_Industrial_03", "TE_HiHat_Open_02", "TE_Clap_Wide_01",
                                  "TE_Bass_Sub_124bpm_Gm", "TE_Pad_Dark_124bpm_Gm"), energy=0.65)
    assert notes[:2] == ["clap -6 dB: its backbeat out-pulsed the kick",
                         "clap -12 dB: its backbeat out-pulsed the kick"]
    assert kick_leads(bus, 44100, bpm=124.0) == (True, 124.0)


HOUSE_GROOVE = ("TE_Kick_Industrial_03", "TE_HiHat_Open_02", "TE_Clap_Wide_01",
                "TE_Bass_Sub_124bpm_Gm")


def test_offbeat_hats_that_cancel_the_kick_are_lowered_in_that_section(monkeypatch):
    # Without a pad, the lowered clap is not enough: the open hats between the kicks keep
    # cancelling the kick's pulse, and 186 BPM still wins...
    monkeypatch.setattr(beatguard, "OFFBEAT_TRIM_DB", 0.0)  # a trim that changes nothing
    monkeypatch.setattr(beatguard, "KICK_BOOST_STEPS_DB", ())
    notes, bus = groove("house", HOUSE_GROOVE, energy=0.65)
    assert notes == ["clap -6 dB: its backbeat out-pulsed the kick",
                     "clap -12 dB: its backbeat out-pulsed the kick"]
    assert kick_leads(bus, 44100, bpm=124.0) == (False, 186.0)
    # ... until the hats are 12 dB quieter in that section.
    monkeypatch.undo()
    notes, bus = groove("house", HOUSE_GROOVE, energy=0.65)
    assert notes[2:] == ["hihat -12 dB in Groove: off the beat, it cancelled the kick's pulse"]
    assert kick_leads(bus, 44100, bpm=124.0) == (True, 124.0)


def test_a_kick_that_still_does_not_lead_is_turned_up_in_that_section(monkeypatch):
    # The same groove with its hats left as they are: 186 BPM wins (above) until the kick is
    # 3 dB louder there.
    monkeypatch.setattr(beatguard, "OFFBEAT_TRIM_DB", 0.0)
    notes, bus = groove("house", HOUSE_GROOVE, energy=0.65)
    assert notes[2:] == ["kick +3 dB in Groove: it did not lead there"]
    assert kick_leads(bus, 44100, bpm=124.0) == (True, 124.0)


def test_a_fighter_the_lowered_offbeats_unmask_is_left_out_then(monkeypatch):
    # A quiet percussion loop of six hits a bar (quarter-note triplets: 186 BPM at 124) is
    # buried under the clap and the open hats at first; once they are lowered it beats the kick.
    monkeypatch.setattr(beatguard, "KICK_BOOST_STEPS_DB", ())
    triplets = clicks(6, bpm=124.0, bars=1, level=0.01, rate=44100)[:, :round(44100 * 240 / 124)]
    notes, bus = groove("house", HOUSE_GROOVE, energy=0.65, perc_loop=triplets)
    assert notes == ["clap -6 dB: its backbeat out-pulsed the kick",
                     "clap -12 dB: its backbeat out-pulsed the kick",
                     "hihat -12 dB in Groove: off the beat, it cancelled the kick's pulse",
                     "perc left out of Groove: it pulses at 185.9 BPM against the kick's 124"]
    assert kick_leads(bus, 44100, bpm=124.0) == (True, 124.0)


def test_a_section_heard_with_lanes_changed_sounds_as_the_mix_made_with_them():
    # The guard's last steps hear a change by adding the lane's own staged audio at the
    # difference; the mix made with the change must read the same (one section: no ride
    # between sections, no sweep into a drop).
    regions, setup = groove_parts("house", HOUSE_GROOVE, energy=0.65)
    mixed = mix_regions(regions, **setup)
    reading = lead_ratio(mixed.bus, 44100, 124.0)
    assert reading[0] < beatguard.LEAD_MARGIN  # the clap's 186 BPM leads: the section is heard
    hearing = Hearing(mixed, regions, {0: reading}, grid=setup["grid"], plan=setup["plan"],
                      staged=partial(staged_region, source_for=setup["source_for"],
                                     grid=setup["grid"], plan=setup["plan"],
                                     pattern=setup["pattern"]))
    hearing.set_level(0, ["hihat"], -12.0)
    hearing.set_level(0, ["kick"], 3.0)
    hearing.set_level(0, ["kick"], 6.0)  # a level replaces the last one, as a trim does
    changed = [trimmed(trimmed(r, {0: "hihat"}, -12.0), {0: "kick"}, 6.0) for r in regions]
    remixed = lead_ratio(mix_regions(changed, **setup).bus, 44100, 124.0)
    assert hearing.readings[0] == pytest.approx(remixed, rel=1e-3)
    assert hearing.readings[0][0] != pytest.approx(reading[0], rel=0.05)  # it did change


def test_a_trim_lowers_the_named_lane_in_the_named_sections_only():
    kick, hat, clap = (region(lane, lane, (0, 1, 2, 3), PLAN) for lane in ("kick", "hihat", "clap"))
    lowered = [trimmed(r, {1: "hihat", 3: "hihat"}, -12.0) for r in (kick, hat, clap)]
    assert [r.trims_db for r in lowered] == [(), ((1, -12.0), (3, -12.0)), ()]
    assert [lowered[1].trim_db(i) for i in range(4)] == [0.0, -12.0, 0.0, -12.0]
    # Trimming again replaces a section's trim; it does not add to it.
    assert trimmed(lowered[1], {1: "hihat"}, -6.0).trims_db == ((3, -12.0), (1, -6.0))


def test_only_the_part_pulsing_hardest_at_the_rival_is_lowered():
    # Minimal techno: the open hat (on the "and" of 2 and 4) and the clap both pulse at the
    # half tempo; lowering the clap too would take from the kick's beat what the hat gave back.
    notes, bus = groove("minimal", ("TE_Kick_Deep_02", "TE_HiHat_Open_02", "TE_Clap_Wide_01",
                                    "TE_Bass_Sub_124bpm_Gm", "TE_Pad_Dark_124bpm_Gm"), energy=0.65)
    assert notes[:2] == ["hihat -6 dB: its backbeat out-pulsed the kick",
                         "hihat -12 dB: its backbeat out-pulsed the kick"]
    assert not any(note.startswith("clap") for note in notes)
    assert kick_leads(bus, 44100, bpm=124.0) == (True, 124.0)
