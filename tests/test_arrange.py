"""arrange / plan_prompt: a table of prompts, and the properties every plan must have."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import pytest

from daemon.compose.arrange import arrange, fallback_genre, plan_prompt
from daemon.compose.phrases import MAX_PART_BARS
from daemon.compose.plan import BEATS_PER_BAR, Plan, plan_from_json, plan_to_json
from daemon.compose.prompt import Intent
from daemon.compose.rules import load_rules
from daemon.errors import PlanError
from daemon.keys import parse_key
from daemon.taxonomy import CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
#: A library whose tonal stems are mostly in A minor, some in C major, a few in F minor.
LIBRARY = {"A minor": 10, "C major": 6, "F minor": 3}
FILLER = "house 126 bpm " + "and then some words nobody knows " * 320

# prompt, genre, bpm, key, length: ("s", seconds) or ("bars", n), met to the nearest 8-bar
# phrase, or None for the genre's default length (about 3-5 minutes).
TABLE = [
    ("driving industrial techno 138 bpm", "techno", 138, "A minor", None),
    ("aggressiver düsterer Techno 135 bpm", "techno", 135, "A minor", None),
    ("dark techno in F minor, 3:30", "techno", 132, "F minor", ("s", 210)),
    ("Techno 128 BPM f-moll 128 Takte", "techno", 128, "F minor", ("bars", 128)),
    ("deep house, A-Dur, 5 min", "deep_house", 120, "A major", ("s", 300)),
    ("Deephouse mit warmen Akkorden 122bpm", "deep_house", 122, "A minor", None),
    ("happy house with vocals", "house", 125, "C major", None),
    ("Chicago House, fröhlich, 124 bpm, 3 Minuten", "house", 124, "C major", ("s", 180)),
    ("minimal techno, hypnotic, 4:00", "minimal", 124, "A minor", ("s", 240)),
    ("minimal", "minimal", 124, "A minor", None),
    ("euphoric trance 140 bpm in Bb major", "trance", 140, "A# major", None),
    ("uplifting trance, 138bpm, seed 42", "trance", 138, "A minor", None),
    ("psytrance 145 bpm fis-moll", "trance", 145, "F# minor", None),
    ("dnb 174 bpm", "drum_and_bass", 174, "A minor", None),
    ("Drum & Bass, dunkel, f-moll, 5 min", "drum_and_bass", 174, "F minor", ("s", 300)),
    ("d&b 172bpm 128 bars", "drum_and_bass", 172, "A minor", ("bars", 128)),
    ("liquid drum and bass, happy, 90 seconds", "drum_and_bass", 174, "C major", ("s", 90)),
    ("heavy dubstep 140 bpm", "dubstep", 140, "A minor", None),
    ("Dubstep, brutal, e-moll", "dubstep", 140, "E minor", None),
    ("boom bap hip hop 92 bpm", "hip_hop", 92, "A minor", None),
    ("Hip-Hop Beat in C# minor, 3 min", "hip_hop", 90, "C# minor", ("s", 180)),
    ("Tempo 100, Hip Hop, Es-Dur", "hip_hop", 100, "D# major", None),
    ("lo-fi hip hop, verträumt, 75 bpm", "lofi", 75, "C major", None),
    ("lofi beats melancholisch", "lofi", 78, "A minor", None),
    ("chillhop 3:00 seed 3", "lofi", 78, "C major", ("s", 180)),
    ("ambient soundscape, dreamy, 2:30", "ambient", 70, "C major", ("s", 150)),
    ("dunkles Ambient in d-moll", "ambient", 70, "D minor", None),
    ("breakbeat 135 bpm", "breakbeat", 135, "A minor", None),
    ("big beat, funky, Am", "breakbeat", 134, "A minor", None),
    ("electro 130 bpm F#m", "electro", 130, "F# minor", None),
    ("Elektro, mysteriös, 64 Takte", "electro", 132, "A minor", ("bars", 64)),
    ("h-moll, House", "house", 125, "B minor", None),
    # no genre named: guessed from tempo and mood
    ("170", "drum_and_bass", 170, "A minor", None),
    ("140 bpm dark", "dubstep", 140, "A minor", None),
    ("90 bpm", "hip_hop", 90, "A minor", None),
    ("dreamy", "ambient", 70, "C major", None),
    ("Am Abend, ruhig und warm", "lofi", 78, "C major", None),
    ("A minor", "techno", 132, "A minor", None),
    ("DUSTER TREIBEND 130", "techno", 130, "A minor", None),
    # edge cases
    ("", "techno", 132, "A minor", None),
    ("12345 678", "techno", 132, "A minor", None),
    ("🔥🎧🌙✨", "techno", 132, "A minor", None),
    (FILLER, "house", 126, "A minor", None),
    ("techno 128 bpm ... no wait, 140 bpm", "techno", 140, "A minor", None),
    ("900 bpm techno", "techno", 250, "A minor", None),
    ("trance 10 bpm", "trance", 40, "A minor", None),
    ("house\nbpm: 122\nkey: g-moll\nlength: 2:00\nseed: 9", "house", 122, "G minor", ("s", 120)),
    ("techno 130 bpm\nbpm: 141", "techno", 141, "A minor", None),
    ("genre: dnb\ndark techno", "drum_and_bass", 174, "A minor", None),
    ("Techno, 2 hours", "techno", 132, "A minor", ("s", 1800)),
    ("techno 0 bars", "techno", 132, "A minor", None),
    ("3 min 30 sec trance at 136 bpm", "trance", 136, "A minor", ("s", 210)),
]


@pytest.fixture(scope="module")
def rules():
    return load_rules(ROOT / "rules")


def roles_of(plan: Plan, rules) -> list[str]:
    """The template role of each section ("Drop 1 B" is a part of "Drop 1")."""
    by_name = {section.name: section.role for section in rules.genres[plan.genre].sections}
    return [by_name[re.sub(r" [A-Z]+$", "", section.section)] for section in plan.structure]


def nearest_phrase(bars: float) -> int:
    """Whole 8-bar phrases nearest to `bars` (halves up), at least one."""
    return max(8, 8 * int(bars / 8 + 0.5))


def check_length(plan: Plan, *, seconds: float | None = None, bars: int | None = None) -> None:
    """The requested length met to the nearest 8-bar phrase, with a note giving the
    difference in seconds."""
    wanted = bars if bars is not None else seconds / plan.seconds_per_bar
    assert plan.bars == nearest_phrase(wanted), (plan.bars, wanted)
    note = next(n for n in plan.notes if "nearest 8-bar phrase" in n)
    difference = float(re.search(r"\(([+-][0-9.]+) s\)", note).group(1))
    assert difference == pytest.approx((plan.bars - wanted) * plan.seconds_per_bar, abs=0.051)


def is_dj_intro(plan: Plan, rules, index: int) -> bool:
    """Whether section `index` is the drums-only DJ intro of a club genre."""
    edges = rules.genres[plan.genre].edges
    return index == 0 and edges is not None and \
        {q.category for q in plan.structure[0].stem_queries} == set(edges.lanes)


def check_plan(plan: Plan, rules) -> None:
    """Properties every plan must have, whatever the prompt."""
    assert plan_from_json(plan_to_json(plan)) == plan
    parse_key(plan.key)
    bars = [section.bars for section in plan.structure]
    assert all(b % 4 == 0 for b in bars), bars
    assert max(bars) <= MAX_PART_BARS, bars
    for before, after in zip(plan.structure, plan.structure[1:]):
        assert ({q.category for q in before.stem_queries}
                != {q.category for q in after.stem_queries}), (before.section, after.section)
    roles = roles_of(plan, rules)
    for index in range(1, len(roles)):
        if roles[index] == "drop" and roles[index - 1] != "drop" and \
                not is_dj_intro(plan, rules, index - 1):
            lanes = {q.category for q in plan.structure[index - 1].stem_queries}
            assert "fx" in lanes, plan.structure[index - 1].section
    assert all(q.category in CATEGORIES for s in plan.structure for q in s.stem_queries)
    assert plan.length_seconds == pytest.approx(plan.bars * BEATS_PER_BAR * 60 / plan.bpm,
                                                abs=1e-3)
    assert plan.four_on_floor == rules.genres[plan.genre].four_on_floor


@pytest.mark.parametrize("prompt, genre, bpm, key, length", TABLE,
                         ids=[f"{i:02d}-{row[0][:30]}" for i, row in enumerate(TABLE)])
def test_prompt_table(rules, prompt, genre, bpm, key, length):
    plan = plan_prompt(prompt, rules, key_counts=LIBRARY)
    check_plan(plan, rules)
    assert (plan.genre, plan.bpm, plan.key) == (genre, bpm, key)
    if length is None:  # the template's own length
        sections = rules.genres[genre].sections
        assert sum(min(s.bars) for s in sections) <= plan.bars <= sum(max(s.bars) for s in sections)
    elif length[0] == "bars":
        check_length(plan, bars=length[1])
    elif length[1] < 1800:
        check_length(plan, seconds=length[1])


def test_table_is_big_and_varied():
    assert len(TABLE) >= 40
    assert len({row[1] for row in TABLE}) == 12
    assert len(FILLER.encode()) > 10_000


# -- determinism and seeds --------------------------------------------------------------------
def test_same_prompt_and_seed_give_the_same_plan(rules):
    first = plan_prompt("dark techno 3:30", rules, seed=5, key_counts=LIBRARY)
    again = plan_prompt("dark techno 3:30", rules, seed=5, key_counts=LIBRARY)
    assert plan_to_json(first) == plan_to_json(again)


def test_without_a_seed_the_prompt_text_fixes_it(rules):
    plan = plan_prompt("warm deep house", rules)
    assert plan.seed == zlib.crc32(b"warm deep house")
    assert plan == plan_prompt("warm deep house", rules)
    assert any("derived from the prompt" in note for note in plan.notes)
    assert plan_prompt("seed 12 warm deep house", rules).seed == 12


def test_explicit_seed_beats_the_prompt_seed_with_a_note(rules):
    plan = plan_prompt("techno seed 7", rules, seed=8)
    assert plan.seed == 8 and any("overrides seed 7" in note for note in plan.notes)


@pytest.mark.parametrize("prompt", ["techno", "ambient", "hip hop 3 min", "dnb 100 bars"])
def test_different_seeds_give_different_valid_plans(rules, prompt):
    plans = [plan_prompt(prompt, rules, seed=seed) for seed in range(12)]
    for plan in plans:
        check_plan(plan, rules)
    assert len({plan_to_json(plan) for plan in plans}) >= 6


def test_seeds_choose_section_lengths_and_optional_lanes(rules):
    plans = [plan_prompt("techno", rules, seed=seed, key_counts=LIBRARY) for seed in range(20)]
    assert len({plan.bars for plan in plans}) > 1
    build_lanes = {frozenset(q.category for q in section.stem_queries)
                   for plan in plans for section in plan.structure if section.section == "Build"}
    assert {"kick", "hihat", "clap", "bass"} <= set.intersection(*map(set, build_lanes))
    assert len(build_lanes) > 1  # the optional perc lane comes and goes


# -- length -----------------------------------------------------------------------------------
@pytest.mark.parametrize("genre", ["techno", "house", "drum_and_bass", "hip_hop", "ambient",
                                   "trance", "lofi", "dubstep"])
def test_requested_seconds_are_met_to_the_nearest_phrase(rules, genre):
    for seconds in (5, 12, 30, 45, 61, 90, 100, 150, 199, 210, 240, 300, 333, 420, 600, 900):
        for seed in (1, 2):
            plan = plan_prompt(f"{genre} {seconds} seconds", rules, seed=seed)
            check_plan(plan, rules)
            check_length(plan, seconds=seconds)
            assert all(section.bars % 8 == 0 for section in plan.structure)


@pytest.mark.parametrize("bars", [1, 3, 5, 9, 13, 16, 17, 23, 33, 48, 64, 77, 100, 127, 128,
                                  200, 301, 512])
def test_requested_bars_are_met_to_the_nearest_phrase(rules, bars):
    for genre in rules.genres:
        plan = plan_prompt(f"{genre} {bars} bars", rules, seed=bars)
        check_plan(plan, rules)
        check_length(plan, bars=bars)


def test_short_tracks_drop_optional_sections_and_keep_the_form(rules):
    plan = plan_prompt("techno 32 bars", rules, seed=1)
    assert roles_of(plan, rules) == ["intro", "build", "drop", "outro"]
    assert [section.bars for section in plan.structure] == [8, 8, 8, 8]


@pytest.mark.parametrize("bars, roles", [
    (20, ["intro", "drop", "outro"]), (12, ["drop", "outro"]), (8, ["drop"]), (6, ["drop"]),
    (2, ["drop"]),
])
def test_very_short_tracks_keep_the_drop(rules, bars, roles):
    plan = plan_prompt(f"techno {bars} bars", rules, seed=1)
    check_plan(plan, rules)
    assert plan.bars == nearest_phrase(bars) and roles_of(plan, rules) == roles


def test_too_long_a_length_is_capped_with_a_note(rules):
    plan = plan_prompt("ambient 3 hours", rules, seed=1)
    assert 1800 - 8 * plan.seconds_per_bar < plan.length_seconds <= 1800
    assert plan.bars % 8 == 0 and any("capped" in note for note in plan.notes)


# -- shape ------------------------------------------------------------------------------------
@pytest.mark.parametrize("genre", sorted(load_rules(ROOT / "rules").genres))
def test_energy_rises_falls_and_rises_again(rules, genre):
    for seed in range(6):
        energies = [section.energy for section in plan_prompt(genre, rules, seed=seed).structure]
        peak = energies.index(max(energies))
        assert energies[0] < energies[peak] > energies[-1]
        dips = [i for i in range(1, len(energies) - 1)
                if energies[i] < energies[i - 1] and max(energies[i:]) > energies[i]]
        assert dips, energies  # a breakdown, then a second drop


@pytest.mark.parametrize("genre", sorted(load_rules(ROOT / "rules").genres))
def test_layers_change_at_least_every_16_bars(rules, genre):
    for seed in range(10):
        for length in ("", " 5 min", " 400 bars"):
            check_plan(plan_prompt(genre + length, rules, seed=seed), rules)


def test_long_sections_are_split_into_parts(rules):
    plan = plan_prompt("drum and bass", rules, seed=1)
    names = [section.section for section in plan.structure]
    assert "Drop 1 A" in names and "Drop 1 B" in names
    a, b = (next(s for s in plan.structure if s.section == n) for n in ("Drop 1 A", "Drop 1 B"))
    assert {q.category for q in b.stem_queries} - {q.category for q in a.stem_queries}


# -- lanes and tags ---------------------------------------------------------------------------
def queries_of(plan: Plan, category: str):
    return [q for s in plan.structure for q in s.stem_queries if q.category == category]


def test_moods_and_named_tags_reach_the_lanes(rules):
    plan = plan_prompt("dark acid techno", rules, seed=1)
    assert all({"dark", "acid"} <= set(q.tags) for q in queries_of(plan, "bass"))
    assert all("punchy" in q.tags and "dark" not in q.tags for q in queries_of(plan, "kick"))
    assert all(q.count == 2 for q in queries_of(plan, "perc"))


def test_mood_energy_shifts_every_section(rules):
    calm = plan_prompt("techno entspannt", rules, seed=1)
    wild = plan_prompt("techno aggressiv", rules, seed=1)
    assert [s.bars for s in calm.structure] == [s.bars for s in wild.structure]
    assert all(c.energy < w.energy for c, w in zip(calm.structure, wild.structure))


def test_categories_named_in_the_prompt_get_a_lane(rules):
    plan = plan_prompt("techno mit Gesang", rules, seed=2)
    roles = roles_of(plan, rules)
    for role, section in zip(roles, plan.structure):
        if role in ("drop", "breakdown"):
            assert "vocal" in {q.category for q in section.stem_queries}, section.section
    assert any("vocal" in note for note in plan.notes)


# -- key --------------------------------------------------------------------------------------
def test_key_is_the_library_most_common_with_a_note(rules):
    plan = plan_prompt("techno", rules, key_counts={"D minor": 7, "E minor": 2, "G major": 9})
    assert plan.key == "D minor"  # the mode techno wants, well served
    assert any("D minor" in note and "library" in note for note in plan.notes)


def test_a_poorly_served_mode_gives_way_to_the_library(rules):
    plan = plan_prompt("techno", rules, key_counts={"D minor": 2, "G major": 9})
    assert plan.key == "G major"


def test_key_ties_are_broken_by_the_seed(rules):
    keys = {plan_prompt("techno", rules, seed=seed, key_counts={"D minor": 4, "E minor": 4,
                                                                  "C major": 1}).key
            for seed in range(20)}
    assert keys == {"D minor", "E minor"}


def test_without_tonal_stems_the_genre_default_applies(rules):
    for key_counts in (None, {}, {"A minor": 0}):
        plan = plan_prompt("euphoric house", rules, seed=4, key_counts=key_counts)
        tonic, mode = plan.key.split()
        assert mode == "major" and tonic in rules.genres["house"].tonics
        assert any("no tonal stems" in note for note in plan.notes)
    tonics = {plan_prompt("house", rules, seed=s).key for s in range(20)}
    assert len(tonics) > 1 and all(key.endswith("minor") for key in tonics)


def test_a_named_key_beats_the_library(rules):
    assert plan_prompt("techno in E minor", rules, key_counts=LIBRARY).key == "E minor"


def test_bad_key_counts_are_a_plan_error(rules):
    with pytest.raises(PlanError, match="key_counts"):
        plan_prompt("techno", rules, key_counts={"Am": 3})


# -- genre ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bpm, moods, genre", [
    (170, (), "drum_and_bass"), (140, ("dark",), "dubstep"), (140, ("aggressive",), "dubstep"),
    (90, (), "hip_hop"), (None, ("dreamy",), "ambient"), (None, (), "techno"),
    (125, (), "house"), (None, ("chill",), "lofi"), (138, (), "trance"),
    (132, ("dark", "driving"), "techno"), (None, ("minimal",), "minimal"),
])
def test_fallback_genre_from_tempo_and_mood(rules, bpm, moods, genre):
    assert fallback_genre(rules, bpm=bpm, moods=moods).name == genre


def test_fallback_genre_is_noted(rules):
    plan = plan_prompt("170 bpm", rules)
    assert any("no genre named: chose drum_and_bass from tempo 170" in n for n in plan.notes)


def test_unknown_genre_in_an_intent_is_a_plan_error(rules):
    with pytest.raises(PlanError, match="polka"):
        arrange(Intent(text="polka", genre="polka"), rules)


def test_a_handmade_zero_length_still_gives_a_valid_plan(rules):
    plan = arrange(Intent(text="x", genre="techno", length_bars=0), rules)
    check_plan(plan, rules)
    assert plan.bars == 8


def test_arrange_accepts_a_handmade_intent(rules):
    intent = Intent(text="x", genre="techno", bpm=130, key="G minor", moods=("dark",),
                    length_bars=64, seed=1)
    plan = arrange(intent, rules)
    check_plan(plan, rules)
    assert (plan.bpm, plan.key, plan.bars, plan.seed, plan.moods) == (
        130, "G minor", 64, 1, ("dark",))
