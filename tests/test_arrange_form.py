"""The form of a plan: 8-bar phrases, DJ edges for club genres, drop 2 unlike drop 1, fills,
and the plan fields that carry them to the renderer."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_arrange import check_length, check_plan, roles_of

from daemon.compose.arrange import plan_prompt
from daemon.compose.plan import Plan, plan_from_dict, plan_to_dict
from daemon.compose.rules import load_rules
from daemon.errors import PlanError

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
CLUB = {"techno", "house", "deep_house", "minimal", "trance", "drum_and_bass", "electro",
        "breakbeat", "dubstep"}
WITH_FILLS = {"techno", "house", "deep_house", "trance", "drum_and_bass", "electro", "breakbeat",
              "dubstep", "hip_hop"}
LENGTHS = ("", " 2:30", " 4 min", " 5 minutes", " 96 bars", " 400 bars")


@pytest.fixture(scope="module")
def rules():
    return load_rules(RULES)


def lanes(section) -> set[str]:
    return {q.category for q in section.stem_queries}


# -- phrases ----------------------------------------------------------------------------------
# prompt, seconds or None, bars or None: met to the nearest 8-bar phrase.
PHRASES = [
    ("deep house with warm chords, 4 minutes", 240, None),
    ("Deep House, warme Akkorde, 4 Minuten", 240, None),
    ("driving techno 138 bpm, 3:30", 210, None),
    ("Techno 141 BPM, 5 Minuten", 300, None),
    ("house 124 bpm 100 bars", None, 100),
    ("Trance, 6 min", 360, None),
    ("dnb 174 bpm, 2 minutes", 120, None),
    ("Drum & Bass, 3 Minuten 20 Sekunden", 200, None),
    ("hip hop 92 bpm, 2:45", 165, None),
    ("lo-fi, verträumt, 75 bpm, 90 Sekunden", 90, None),
    ("ambient, 7 minutes", 420, None),
    ("Elektro 130 bpm 77 Takte", None, 77),
    ("dubstep 140 bpm 3 min", 180, None),
    ("minimal 125 bpm, 8:00", 480, None),
    ("breakbeat 37 bars", None, 37),
]


@pytest.mark.parametrize("prompt, seconds, bars", PHRASES, ids=[p[0][:30] for p in PHRASES])
def test_sections_sit_on_the_phrase_grid_and_lengths_round_to_phrases(rules, prompt, seconds,
                                                                       bars):
    for seed in range(4):
        plan = plan_prompt(prompt, rules, seed=seed)
        check_plan(plan, rules)
        check_length(plan, seconds=seconds, bars=bars)
        assert all(section.bars in (8, 16) for section in plan.structure), \
            [section.bars for section in plan.structure]


def test_the_deep_house_example_of_the_issue(rules):
    plan = plan_prompt("deep house with warm chords, 4 minutes", rules)
    assert plan.bars == 120 and plan.length_seconds == 240.0
    assert all(section.bars % 8 == 0 for section in plan.structure)
    assert any(note.endswith("(+0.0 s)") for note in plan.notes)


@pytest.mark.parametrize("genre", sorted(load_rules(RULES).genres))
def test_template_lengths_stay_on_the_4_bar_grid(rules, genre):
    for seed in range(8):
        plan = plan_prompt(genre, rules, seed=seed)
        assert all(section.bars % 4 == 0 for section in plan.structure)
        assert not any("nearest 8-bar phrase" in note for note in plan.notes)


# -- DJ edges ---------------------------------------------------------------------------------
def test_club_genres_and_only_they_have_drum_only_edges(rules):
    assert {name for name, genre in rules.genres.items() if genre.edges} == CLUB
    for name in CLUB:
        edges = rules.genres[name].edges
        assert edges.intro_bars >= 16 and edges.outro_bars >= 16
        assert set(edges.lanes) == {"kick", "hihat"}, name


def edge_sections(plan: Plan, bars: int, *, from_end: bool) -> list:
    """The sections covering the first (or last) `bars` bars."""
    sections = list(reversed(plan.structure)) if from_end else list(plan.structure)
    covered, chosen = 0, []
    for section in sections:
        if covered >= bars:
            break
        chosen.append(section)
        covered += section.bars
    assert covered == bars, "an edge must end on a section boundary"
    return chosen


@pytest.mark.parametrize("genre", sorted(CLUB))
def test_club_intros_and_outros_play_kick_and_hats_for_16_bars(rules, genre):
    edges = rules.genres[genre].edges
    for seed in range(6):
        for length in LENGTHS:
            plan = plan_prompt(genre + length, rules, seed=seed)
            check_plan(plan, rules)
            for section in (*edge_sections(plan, edges.intro_bars, from_end=False),
                            *edge_sections(plan, edges.outro_bars, from_end=True)):
                assert lanes(section) == {"kick", "hihat"}, (plan.prompt, section.section)
                assert not section.fills  # steady drums to mix on
            body = plan.structure[len(edge_sections(plan, 16, from_end=False))]
            assert lanes(body) != {"kick", "hihat"}


def test_tracks_too_short_for_edges_leave_them_out_with_a_note(rules):
    plan = plan_prompt("techno 48 bars", rules, seed=1)
    assert lanes(plan.structure[0]) != {"kick", "hihat"}
    assert any("too short for the 16-bar DJ intro" in note for note in plan.notes)
    long_enough = plan_prompt("techno 64 bars", rules, seed=1)
    assert lanes(long_enough.structure[0]) == {"kick", "hihat"}
    assert roles_of(long_enough, rules)[0] == "intro"


# -- drop 2 unlike drop 1 ---------------------------------------------------------------------
def first_parts(plan: Plan, rules, role: str = "drop") -> list:
    """The first part of every section of `role`, in order."""
    names = [re.sub(r" [A-Z]+$", "", s.section) for s in plan.structure]
    roles = roles_of(plan, rules)
    return [s for i, s in enumerate(plan.structure)
            if roles[i] == role and (i == 0 or names[i - 1] != names[i])]


@pytest.mark.parametrize("genre", sorted(load_rules(RULES).genres))
def test_later_drops_differ_in_lanes_and_pattern_variation(rules, genre):
    seen_two = False
    for seed in range(12):
        for length in LENGTHS:
            drops = first_parts(plan_prompt(genre + length, rules, seed=seed), rules)
            assert [d.variation for d in drops] == list(range(len(drops)))
            assert len({frozenset(lanes(d)) for d in drops}) == len(drops), \
                [(d.section, sorted(lanes(d))) for d in drops]
            seen_two |= len(drops) >= 2
    assert seen_two


TWIN_DROPS = """
four_on_floor = false

[tempo]
min = 100
max = 130
default = 116

[key]
mode = "major"
tonics = ["C"]

[[sections]]
name = "Intro"
role = "intro"
bars = 8
energy = 0.3
lanes = ["chord"]
variation = ["+hihat"]

[[sections]]
name = "Drop 1"
role = "drop"
bars = 16
energy = 0.9
lanes = ["kick", "hihat", "bass"]
optional_lanes = ["perc"]
variation = ["+cymbal"]

[[sections]]
name = "Break"
role = "breakdown"
bars = 8
energy = 0.4
lanes = ["chord", "pad"]
variation = ["+hihat"]

[[sections]]
name = "Drop 2"
role = "drop"
bars = 16
energy = 0.9
lanes = ["kick", "hihat", "bass", "perc"]
variation = ["+cymbal"]

[[sections]]
name = "Outro"
role = "outro"
bars = 8
energy = 0.2
lanes = ["chord"]
variation = ["+hihat"]
"""


def test_drops_alike_in_the_template_are_made_to_differ(tmp_path):
    """Drop 1 plays Drop 2's lanes whenever the seed adds its optional perc."""
    target = tmp_path / "rules"
    shutil.copytree(RULES / "genres", target / "genres")
    shutil.copy(RULES / "lexicon.toml", target / "lexicon.toml")
    (target / "genres" / "polka.toml").write_text(TWIN_DROPS, encoding="utf-8")
    rules = load_rules(target)
    alike = 0
    for seed in range(12):
        plan = plan_prompt("polka", rules, seed=seed)
        check_plan(plan, rules)
        first, second = first_parts(plan, rules)
        alike += "perc" in lanes(first)
        assert lanes(first) != lanes(second)
        assert lanes(second) == {"kick", "hihat", "bass", "perc"} | (
            {"cymbal"} if "perc" in lanes(first) else set())
    assert alike  # the case the arranger had to vary


# -- fills ------------------------------------------------------------------------------------
@pytest.mark.parametrize("genre", sorted(load_rules(RULES).genres))
def test_genres_with_fills_mark_their_sections_and_others_never(rules, genre):
    assert rules.genres[genre].fills == (genre in WITH_FILLS)
    for seed in range(4):
        plan = plan_prompt(genre, rules, seed=seed)
        marked = [section.fills for section in plan.structure]
        if genre in WITH_FILLS:
            assert sum(marked) >= len(marked) - 2  # all but the DJ edges
        else:
            assert not any(marked)


# -- plan fields ------------------------------------------------------------------------------
def test_plan_carries_four_on_the_floor_variation_and_fills_through_json(rules):
    plan = plan_prompt("techno 5 min", rules, seed=3)
    data = plan_to_dict(plan)
    assert data["four_on_floor"] is True
    assert {"variation", "fills"} <= set(data["structure"][0])
    assert plan_from_dict(data) == plan
    assert plan_prompt("dnb", rules, seed=3).four_on_floor is False


def test_plans_written_before_these_fields_still_load(rules):
    data = plan_to_dict(plan_prompt("house", rules, seed=1))
    del data["four_on_floor"]
    for section in data["structure"]:
        del section["variation"], section["fills"]
    plan = plan_from_dict(data)
    assert plan.four_on_floor is False
    assert all(s.variation == 0 and not s.fills for s in plan.structure)


@pytest.mark.parametrize("field, value, message", [
    ("variation", -1, "plan.structure[0].variation: must be a whole number >= 0"),
    ("variation", 1.5, "plan.structure[0].variation: must be a whole number >= 0"),
    ("variation", "1", "plan.structure[0].variation: must be a number"),
    ("fills", "yes", "plan.structure[0].fills: must be true or false"),
])
def test_bad_plan_section_fields_are_refused(rules, field, value, message):
    data = plan_to_dict(plan_prompt("house", rules, seed=1))
    data["structure"][0][field] = value
    with pytest.raises(PlanError, match=re.escape(message)):
        plan_from_dict(data)


def test_bad_four_on_the_floor_flag_is_refused(rules):
    data = plan_to_dict(plan_prompt("house", rules, seed=1))
    data["four_on_floor"] = 1
    with pytest.raises(PlanError, match="plan.four_on_floor: must be true or false"):
        plan_from_dict(data)
