"""Stem selection (daemon.render.select) and the step-pattern rules (daemon.render.patterns)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from render_helpers import fake_record, settings

from daemon.categories import load_categories
from daemon.compose.plan import Plan, Section, StemQuery
from daemon.errors import RuleError
from daemon.render.fit import fit_stem, tempo_fit
from daemon.render.patterns import STEPS_PER_BAR, load_patterns, parse_patterns
from daemon.render.sections import drop_sections
from daemon.render.select import select_stems, stem_words
from daemon.taxonomy import PATTERN_INSTRUMENTS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

RULES = Path(__file__).resolve().parents[1] / "rules"
TABLE = load_categories(RULES)
GENRES = ("techno", "house", "deep_house", "minimal", "trance", "drum_and_bass", "dubstep",
          "hip_hop", "lofi", "ambient", "breakbeat", "electro")


def plan_of(*sections: Section, bpm: float = 128.0, key: str = "A minor", seed: int = 1,
            moods: tuple[str, ...] = ()) -> Plan:
    return Plan(prompt="test", genre="techno", bpm=bpm, key=key, seed=seed, moods=moods,
                structure=sections)


def section(name: str, *queries: StemQuery, bars: int = 4, energy: float = 0.8) -> Section:
    return Section(name, bars, energy, queries)


def select(plan: Plan, stems, **options):
    """`select_stems` with default settings and the shipped category traits."""
    return select_stems(plan, stems, settings=settings(), categories=TABLE, **options)


def lanes(selection) -> dict[tuple[int, str], int]:
    """(section, lane) → stem id."""
    return {(pick.section, pick.lane): pick.stem.id for pick in selection.picks}


# -- tempo and key -------------------------------------------------------------------------

def test_tempo_fit_reads_half_and_double_time_and_rejects_the_rest():
    assert tempo_fit(128.0, 128.0, 0.25) == (1.0, 128.0)
    ratio, source = tempo_fit(70.0, 140.0, 0.25)  # a half-time loop counts double
    assert source == 140.0 and ratio == pytest.approx(1.0)
    ratio, source = tempo_fit(120.0, 128.0, 0.25)
    assert source == 120.0 and ratio == pytest.approx(128 / 120)
    assert tempo_fit(100.0, 140.0, 0.25) is None  # 1.4x: beyond 25 %, and 200 is worse
    assert tempo_fit(127.0, 128.0, 0.0) is None


def test_fit_stem_excludes_what_cannot_be_conformed():
    plan = plan_of(section("A"))
    config = settings()
    assert fit_stem(fake_record(1, "bass", kind="loop", bpm=128, key="A minor"), plan=plan,
                    settings=config, categories=TABLE) is not None
    too_slow = fake_record(2, "bass", kind="loop", bpm=95, key="A minor")
    far_key = fake_record(3, "bass", kind="loop", bpm=128, key="E minor")  # 5 semitones
    silent = fake_record(4, "kick", lufs=-80.0, peak_db=-90.0)
    no_tempo = fake_record(5, "pad", kind="loop", bpm=None, key="A minor")
    for stem in (too_slow, far_key, silent, no_tempo):
        assert fit_stem(stem, plan=plan, settings=config, categories=TABLE) is None, stem.rel_path
    drums_any_key = fake_record(6, "kick", key="E minor")
    assert fit_stem(drums_any_key, plan=plan, settings=config, categories=TABLE).semitones == 0
    shifted = fit_stem(fake_record(7, "pad", kind="loop", bpm=128, key="B minor"), plan=plan,
                       settings=config, categories=TABLE)
    assert shifted.semitones == -2 and shifted.key_score < 1.0


# -- ranking ---------------------------------------------------------------------------------

def test_tags_and_category_decide_the_pick():
    stems = [fake_record(1, "bass", kind="loop", bpm=128, key="A minor", tags=("sub",)),
             fake_record(2, "bass", kind="loop", bpm=128, key="A minor", tags=("acid", "squelchy")),
             fake_record(3, "synth", kind="loop", bpm=128, key="A minor", tags=("acid",))]
    plan = plan_of(section("A", StemQuery("bass", ("acid",))))
    assert lanes(select(plan, stems)) == {(0, "bass"): 2}


def test_tempo_and_key_fit_rank_otherwise_equal_stems():
    stems = [fake_record(1, "pad", kind="loop", bpm=112, key="A minor"),
             fake_record(2, "pad", kind="loop", bpm=128, key="B minor"),
             fake_record(3, "pad", kind="loop", bpm=127, key="C major")]
    plan = plan_of(section("A", StemQuery("pad")))
    assert lanes(select(plan, stems)) == {(0, "pad"): 3}


def test_extra_scores_can_promote_a_stem():
    stems = [fake_record(1, "lead", kind="loop", bpm=128, key="A minor", tags=("dark",)),
             fake_record(2, "lead", kind="loop", bpm=128, key="A minor")]
    plan = plan_of(section("A", StemQuery("lead")), moods=("dark",))
    assert lanes(select(plan, stems))[(0, "lead")] == 1
    boosted = select(plan, stems, extra_scores={2: 1.0})
    assert lanes(boosted)[(0, "lead")] == 2


def test_kit_coherence_and_vector_similarity_pull_towards_chosen_stems():
    kick = fake_record(1, "kick", kit="Kit B", tags=("punchy",),
                       embedding=np.array([1.0, 0.0, 0.0]))
    stems = [kick,
             fake_record(2, "clap", kit="Kit A", embedding=np.array([0.0, 1.0, 0.0])),
             fake_record(3, "clap", kit="Kit B", embedding=np.array([0.0, 1.0, 0.0])),
             fake_record(4, "hihat", kit="Kit C", embedding=np.array([-1.0, 0.0, 0.0])),
             fake_record(5, "hihat", kit="Kit C", embedding=np.array([0.9, 0.1, 0.0]))]
    plan = plan_of(section("A", StemQuery("kick", ("punchy",)), StemQuery("clap"),
                           StemQuery("hihat")))
    picked = lanes(select(plan, stems))
    assert picked[(0, "clap")] == 3  # same kit as the kick
    assert picked[(0, "hihat")] == 5  # sounds like what was chosen


def test_choice_is_deterministic_for_a_seed():
    stems = [fake_record(n, "perc", tags=("metal",)) for n in range(1, 9)]
    plan = plan_of(section("A", StemQuery("perc", count=3)), seed=42)
    first = select(plan, stems)
    assert select(plan, stems) == first
    # Equal candidates: the seeded jitter decides, and other seeds spread the picks.
    picks = {tuple(lanes(select(plan_of(plan.structure[0], seed=seed), stems)).values())
             for seed in range(12)}
    assert len(picks) > 1


# -- lanes over sections, variety --------------------------------------------------------

def test_lanes_keep_their_stem_and_top_lines_vary_when_a_section_returns():
    stems = [fake_record(1, "bass", kind="loop", bpm=128, key="A minor"),
             fake_record(2, "bass", kind="loop", bpm=128, key="A minor"),
             fake_record(3, "lead", kind="loop", bpm=128, key="A minor"),
             fake_record(4, "lead", kind="loop", bpm=128, key="A minor")]
    drop = (StemQuery("bass"), StemQuery("lead"))
    # The arranger's names: long sections come in parts ("A", "B") of one occurrence.
    plan = plan_of(section("Drop 1 A", *drop), section("Drop 1 B", *drop),
                   section("Break", StemQuery("bass")), section("Drop 2 A", *drop))
    picked = lanes(select(plan, stems))
    assert len({picked[(index, "bass")] for index in range(4)}) == 1
    assert picked[(0, "lead")] == picked[(1, "lead")] != picked[(3, "lead")]


def test_a_new_lane_does_not_take_a_stem_that_already_plays():
    synths = [fake_record(1, "synth", kind="loop", bpm=128, key="A minor", tags=("dark",)),
              fake_record(2, "synth", kind="loop", bpm=128, key="A minor")]
    plan = plan_of(section("Drop", StemQuery("synth", ("dark",))),
                   section("Break", StemQuery("pad", ("dark",)), StemQuery("synth")))
    picked = lanes(select(plan, synths))
    assert picked == {(0, "synth"): 1, (1, "synth"): 1, (1, "pad"): 2}


def test_fx_before_a_drop_asks_for_a_riser():
    stems = [replace(fake_record(1, "fx"), rel_path="FX/Downlifter_Noise.wav"),
             replace(fake_record(2, "fx"), rel_path="FX/NoiseRiser_8bars.wav")]
    build = section("Build", StemQuery("fx"), energy=0.5)
    drop = section("Drop", energy=1.0)
    picked = lanes(select(plan_of(build, drop, replace(build, section="Build 2"), drop),
                                stems))
    assert picked[(0, "fx")] == picked[(2, "fx")] == 2  # no variation into a downlifter
    calm = lanes(select(plan_of(build, section("Break", energy=0.3)), stems, extra_scores={1: 0.1}))
    assert calm[(0, "fx")] == 1  # no drop follows: no riser wanted


def test_drops_are_named_or_energy_jumps_and_parts_continue_them():
    plan = plan_of(section("Intro", energy=0.3), section("Drop 1 A", energy=0.9),
                   section("Drop 1 B", energy=0.9), section("Break", energy=0.4),
                   section("Peak", energy=0.9), section("Outro", energy=0.3))
    assert drop_sections(plan) == {1, 4}


def test_stem_words_read_tags_and_file_names():
    stem = replace(fake_record(1, "hihat", tags=("metallic",)),
                   rel_path="Drums/HiHats/TE_OpenHat-02.wav")
    assert {"metallic", "open", "hat", "hi", "hats", "02"} <= stem_words(stem)


def test_a_stem_never_plays_in_two_lanes_of_one_section():
    hats = [fake_record(1, "hihat"), fake_record(2, "hihat", tags=("open",))]
    plan = plan_of(section("A", StemQuery("hihat", count=2)))
    picked = lanes(select(plan, hats))
    assert {picked[(0, "hihat")], picked[(0, "hihat2")]} == {1, 2}
    with_ride = select(plan, [hats[0], fake_record(3, "cymbal")])
    assert lanes(with_ride) == {(0, "hihat"): 1, (0, "hihat2"): 3}  # related, not the same
    assert with_ride.fallbacks == ("hihat2: every usable hihat already plays here; "
                                   "used cymbal",)
    only = select(plan, hats[:1])
    assert lanes(only) == {(0, "hihat"): 1}  # doubling a sample only makes it louder
    assert only.fallbacks == ("hihat2: every usable hihat already plays here; lane left out",)


def test_fallbacks_are_recorded():
    stems = [fake_record(1, "synth", kind="loop", bpm=128, key="A minor"),
             fake_record(2, "kick"), fake_record(3, "hihat"),
             fake_record(4, "bass", kind="loop", bpm=90, key="A minor")]  # too slow to use
    plan = plan_of(section("A", StemQuery("bass"), StemQuery("vocal"), StemQuery("drum_loop")))
    selection = select(plan, stems)
    assert lanes(selection) == {(0, "bass"): 1, (0, "kick"): 2, (0, "hihat"): 3}
    assert set(selection.fallbacks) == {
        "bass: 1 in library, none within tempo/key range; used synth",
        "vocal: none in library; lane left out",
        "drum_loop: none in library; built from kick + hihat one-shots",
    }


def test_a_category_the_rules_do_not_define_is_left_out():
    stems = [fake_record(1, "keys"), fake_record(2, "chord", kind="loop", bpm=128, key="A minor")]
    selection = select(plan_of(section("A", StemQuery("keys"), StemQuery("chord"))), stems)
    assert lanes(selection) == {(0, "chord"): 2}
    assert selection.fallbacks == ("keys: not a category of the rules; lane left out",)
    assert fit_stem(stems[0], plan=plan_of(section("A")), settings=settings(),
                    categories=TABLE) is None


def test_empty_library_selects_nothing():
    plan = plan_of(section("A", StemQuery("kick")))
    selection = select(plan, [])
    assert selection.picks == ()
    assert selection.fallbacks == ("kick: none in library; lane left out",)


# -- patterns.toml ---------------------------------------------------------------------------

def test_shipped_patterns_cover_every_genre_with_sane_grooves():
    rules = load_patterns(RULES)
    for genre in GENRES:
        assert genre in rules.genres, genre
        pattern = rules.for_genre(genre)
        assert set(PATTERN_INSTRUMENTS) <= set(pattern.steps)
        assert all(len(steps) % STEPS_PER_BAR == 0 for steps in pattern.steps.values())
    for genre in ("techno", "house", "deep_house", "minimal", "trance"):
        kick = rules.for_genre(genre).steps["kick"]
        assert all(kick[beat * 4] > 0 for beat in range(4)), f"{genre}: four on the floor"
    for genre in ("techno", "house", "hip_hop", "drum_and_bass"):
        clap = rules.for_genre(genre).steps["clap"]
        assert clap[4] > 0 and clap[12] > 0, f"{genre}: backbeat on 2 and 4"
    assert rules.for_genre("polka") is rules.genres["default"]
    assert rules.for_genre("lofi").swing > 0.2


def test_kick_patterns_agree_with_the_genres_four_on_the_floor_flag():
    rules = load_patterns(RULES)
    for path in sorted((RULES / "genres").glob("*.toml")):
        flag = tomllib.loads(path.read_text()).get("four_on_floor")
        kick = rules.for_genre(path.stem).steps["kick"]
        bars = [kick[start:start + STEPS_PER_BAR] for start in range(0, len(kick), STEPS_PER_BAR)]
        on_every_beat = all(bar[beat * 4] > 0 for bar in bars for beat in range(4))
        assert on_every_beat == flag, path.name


def test_a_genre_may_leave_instruments_to_the_default():
    default = {name: "X... .... .... ...." for name in PATTERN_INSTRUMENTS}
    rules = parse_patterns({"default": default, "sparse": {"kick": "X... ...." * 2}})
    sparse = rules.for_genre("sparse")
    assert sparse.steps["kick"][:5] == (1.0, 0.0, 0.0, 0.0, 0.0)
    assert sparse.steps["tom"] == rules.genres["default"].steps["tom"]


def test_bad_patterns_name_file_and_key(tmp_path):
    (tmp_path / "patterns.toml").write_text(
        '[default]\nkick = "X..."\n\n[techno]\nkick = "X..Z X... X... X..."\nswing = 2\n'
        'cowbell = "X..."\n')
    with pytest.raises(RuleError) as error:
        load_patterns(tmp_path)
    message = str(error.value)
    assert "patterns.toml: default.kick: must have a multiple of 16 steps (got 4)" in message
    assert "patterns.toml: techno.kick: unknown step characters 'Z'" in message
    assert "patterns.toml: techno.swing: must be between 0 and 0.5 (got 2)" in message
    assert "patterns.toml: techno.cowbell: unknown key" in message
    assert "patterns.toml: default.snare: is required in the default genre" in message
