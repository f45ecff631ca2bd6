"""rules/patterns.toml beyond the grooves: fills on phrase ends, variations for repeated
sections, level trims for parts that fight the kick; and the sequencer and mixer using them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from render_helpers import fake_record, settings

from daemon.categories import load_categories
from daemon.compose.plan import Plan, Section
from daemon.compose.rules import load_rules
from daemon.errors import RuleError
from daemon.render.mix import mix_regions
from daemon.render.patterns import (
    GenrePattern,
    is_fill_bar,
    load_patterns,
    parse_patterns,
)
from daemon.render.select import Fit, Pick
from daemon.render.sequence import Grid, Region, pattern_hits
from daemon.taxonomy import PATTERN_INSTRUMENTS

RULES = Path(__file__).resolve().parents[1] / "rules"
TABLE = load_categories(RULES)
SR = 44100
GENRES = load_rules(RULES).genres
#: A percussion part fights the beat when its strongest periodicity is 3 or 6 sixteenths (5
#: hits a bar heard as a pulse of its own); it must then sit this far under its staging.
FIGHTING_LAGS, FIGHT_LEVEL_DB = (3, 6), -6.0
PERCUSSION = ("clap", "snare", "hihat", "open_hat", "cymbal", "perc", "tom")


def velocities(text: str) -> tuple[float, ...]:
    return tuple({"X": 1.0, "x": 0.75, "o": 0.45, ".": 0.0}[c] for c in text.replace(" ", ""))


def strongest_lag(steps: tuple[float, ...]) -> int:
    """The lag (2..8 sixteenths) of the largest circular autocorrelation of the mean-removed
    velocities: the pattern's own pulse."""
    centred = np.asarray(steps) - np.mean(steps)
    return max(range(2, 9), key=lambda lag: float(np.dot(centred, np.roll(centred, -lag))))


# -- shipped data -----------------------------------------------------------------------------
def test_genres_with_fills_have_a_roll_or_a_break():
    rules = load_patterns(RULES)
    for genre, rules_of in GENRES.items():
        if not rules_of.fills:
            continue
        pattern = rules.for_genre(genre)
        assert {"snare", "tom", "kick", "clap"} & set(pattern.fill), genre
        for instrument, fill in pattern.fill.items():  # bars 7 and 15 end the phrases
            for bar in (7, 15):
                assert fill != pattern.bar_steps(instrument, bar), f"{genre}.fill.{instrument}"


def test_every_genre_has_a_variation_its_drums_can_be_heard_in():
    rules = load_patterns(RULES)
    for genre in GENRES:
        own = rules.genres[genre]
        assert own.variations, genre
        pattern = rules.for_genre(genre)
        changed = [name for name in ("kick", "clap", "snare", "hihat", "open_hat", "perc")
                   if any(pattern.bar_steps(name, bar, variation=1)
                          != pattern.bar_steps(name, bar) for bar in range(4))]
        assert changed, genre


def test_parts_that_fight_the_beat_sit_under_the_kick_in_four_on_the_floor_genres():
    rules = load_patterns(RULES)
    found = set()
    for genre, rules_of in GENRES.items():
        if not rules_of.four_on_floor:
            continue
        pattern = rules.for_genre(genre)
        for variation in range(len(pattern.variations) + 1):
            for name in PERCUSSION:
                steps = sum((pattern.bar_steps(name, bar, variation=variation)
                             for bar in range(4)), ())
                if strongest_lag(steps) in FIGHTING_LAGS:
                    found.add((genre, name))
                    assert pattern.level(name) <= FIGHT_LEVEL_DB, (genre, name, variation)
            kick = sum((pattern.bar_steps("kick", bar, variation=variation)
                        for bar in range(4)), ())
            assert all(kick[beat * 4] > 0 for beat in range(16)), (genre, variation)
    assert ("techno", "perc") in found and ("minimal", "perc") in found


def test_the_fight_detector_tells_a_three_step_cycle_from_a_groove():
    assert strongest_lag(velocities("...x ..o. .x.. o..x")) == 3
    assert strongest_lag(velocities("ooXo ooXo ooXo ooXo")) == 4
    assert strongest_lag(velocities(".... X... .... X...")) == 8


# -- the data model ---------------------------------------------------------------------------
KICK, BREAK, ALT = "X... X... X... X...", "X... X... X... ....", "X.X. X... X... X..."


def groove(**extra) -> GenrePattern:
    return GenrePattern("test", {"kick": velocities(KICK), "hihat": velocities("..x. " * 4)},
                        0.0, **extra)


@pytest.mark.parametrize("bar, bars, expected", [
    (7, 16, True), (15, 16, True), (8, 16, False), (6, 16, False), (3, 4, True),
    (11, 12, True), (7, 12, True), (3, 12, False), (0, 1, True),
])
def test_fills_fall_on_phrase_ends_and_section_ends(bar, bars, expected):
    assert is_fill_bar(bar, bars) is expected


def test_bar_steps_pick_the_fill_the_variation_or_the_pattern():
    pattern = groove(fill={"kick": velocities(BREAK)},
                     variations=({"kick": velocities(ALT)}, {"kick": velocities(BREAK * 2)}))
    assert pattern.bar_steps("kick", 3) == velocities(KICK)
    assert pattern.bar_steps("kick", 3, fill=True) == velocities(BREAK)
    assert pattern.bar_steps("hihat", 3, fill=True) == velocities("..x. " * 4)  # not in fill
    assert pattern.bar_steps("kick", 3, variation=1) == velocities(ALT)
    assert pattern.bar_steps("kick", 3, variation=2) == velocities(BREAK)
    assert pattern.bar_steps("kick", 3, variation=3) == velocities(ALT)  # wraps around
    assert pattern.bar_steps("hihat", 3, variation=1) == velocities("..x. " * 4)
    assert groove().bar_steps("kick", 0, variation=2) == velocities(KICK)  # none: its own


def test_a_genre_takes_fill_and_variations_whole_and_levels_per_instrument():
    default = {name: "X... .... .... ...." for name in PATTERN_INSTRUMENTS}
    rules = parse_patterns({
        "default": {**default, "fill": {"tom": "xxxx " * 4}, "level_db": {"perc": -3},
                    "variations": [{"hihat": "x.x. " * 4}]},
        "plain": {"kick": KICK},
        "own": {"fill": {"snare": "..x. " * 4}, "level_db": {"cymbal": -2},
                "variations": [{"kick": ALT}]},
    })
    plain, own = rules.for_genre("plain"), rules.for_genre("own")
    assert set(plain.fill) == {"tom"} and set(plain.variations[0]) == {"hihat"}
    assert set(own.fill) == {"snare"} and set(own.variations[0]) == {"kick"}
    assert own.level("perc") == -3 and own.level("cymbal") == -2 and own.level("kick") == 0


def test_bad_fills_variations_and_levels_name_file_and_key(tmp_path):
    text = (RULES / "patterns.toml").read_text(encoding="utf-8")
    text = text.replace('[techno.fill]\nkick = "X... X... X... ...."',
                        '[techno.fill]\nkick = "X... X... X... .... X... X... X... X..."\n'
                        'cowbell = "X... .... .... ...."')
    text = text.replace("level_db = { perc = -6.0 }", "level_db = { perc = 3, bell = -2 }")
    text = text.replace("[[lofi.variations]]", "[lofi.variations]")
    text = text.replace("[[ambient.variations]]", "[[ambient.variations]]\n\n"
                        "[[ambient.variations]]")
    (tmp_path / "patterns.toml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleError) as error:
        load_patterns(tmp_path)
    message = str(error.value)
    for line in ("patterns.toml: techno.fill.kick: a fill is one bar of 16 steps (got 32)",
                 "patterns.toml: techno.fill.cowbell: unknown key",
                 "patterns.toml: techno.level_db.perc: must be between -24 and 0 (got 3)",
                 "patterns.toml: techno.level_db.bell: unknown key",
                 "patterns.toml: lofi.variations: must be a list of [[lofi.variations]] tables",
                 "patterns.toml: ambient.variations[0]: must name at least one instrument"):
        assert line in message, message


# -- the sequencer and the mixer --------------------------------------------------------------
def region_for(plan: Plan, lane: str, sections: tuple[int, ...]) -> Region:
    pick = Pick(sections[0], lane, lane, fake_record(1, lane), Fit(1.0, None, 0, 1.0, 1.0))
    starts = plan.section_starts()
    end = starts[sections[-1]] + plan.structure[sections[-1]].bars
    return Region(lane, lane, pick, sections, starts[sections[0]], end, "pattern", TABLE[lane])


def hits_per_bar(plan: Plan, pattern: GenrePattern, lane: str = "kick") -> list[int]:
    grid = Grid(SR, plan.bpm)
    region = region_for(plan, lane, tuple(range(len(plan.structure))))
    hits = pattern_hits(region, grid=grid, plan=plan, pattern=pattern,
                        rng=np.random.default_rng(0))
    bars = [round(offset / grid.samples_per_bar - 0.49) for offset, _ in hits]
    return [bars.count(bar) for bar in range(plan.bars)]


def test_sections_with_fills_play_them_at_phrase_ends_and_others_never():
    pattern = groove(fill={"kick": velocities(BREAK)})
    plan = Plan("p", "test", 128.0, "A minor", 1, structure=(
        Section("Drop", 16, 0.9, fills=True), Section("Edge", 8, 0.9),
        Section("Break", 12, 0.9, fills=True)))
    counts = hits_per_bar(plan, pattern)
    assert [bar for bar, count in enumerate(counts) if count == 3] == [7, 15, 31, 35]
    assert all(count in (3, 4) for count in counts)
    assert hits_per_bar(plan, pattern, lane="hihat") == [4] * plan.bars  # the fill names no hat


def test_a_repeated_section_plays_its_variation():
    pattern = groove(variations=({"kick": velocities(ALT)},))
    plan = Plan("p", "test", 128.0, "A minor", 1, structure=(
        Section("Drop 1", 8, 0.9), Section("Drop 2", 8, 0.9, variation=1)))
    assert hits_per_bar(plan, pattern) == [4] * 8 + [5] * 8


def test_the_level_trim_lowers_the_lane_under_its_staging():
    plan = Plan("p", "techno", 128.0, "A minor", 1, structure=(Section("Drop", 8, 0.9),))
    grid = Grid(SR, plan.bpm)
    click = np.zeros((2, 2000), dtype=np.float32)
    click[:, :200] = np.hanning(400)[200:] * 0.5
    region = region_for(plan, "perc", (0,))
    perc = GenrePattern("techno", {"perc": velocities("...x ..o. .x.. o..x")}, 0.0)

    def staging(pattern: GenrePattern) -> float:
        mixed = mix_regions([region], source_for=lambda _: click, grid=grid, plan=plan,
                            pattern=pattern, settings=settings(sidechain=False))
        return mixed.lane_gain_db[("perc", 1)]

    assert staging(GenrePattern("techno", perc.steps, 0.0, level_db={"perc": -6.0})) == \
        pytest.approx(staging(perc) - 6.0)
