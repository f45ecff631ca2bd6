"""rules/: every shipped file loads; bad files raise RuleError naming file and key; lexicon."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daemon.compose.arrange import plan_prompt
from daemon.compose.genres import ROLES
from daemon.compose.plan import BEATS_PER_BAR
from daemon.compose.rules import load_rules
from daemon.errors import RuleError
from daemon.taxonomy import CATEGORIES, TAGS

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
REQUIRED_GENRES = {"techno", "house", "deep_house", "minimal", "trance", "drum_and_bass",
                   "dubstep", "hip_hop", "lofi", "ambient", "breakbeat", "electro"}

GOOD_GENRE = """
synonyms = ["polka", "polkas"]
typical_moods = ["happy"]
four_on_floor = false

[tempo]
min = 100
max = 130
default = 116

[key]
mode = "major"
tonics = ["C", "G"]
mode_by_mood = { dark = "minor" }

[lanes.kick]
tags = ["punchy"]
count = 1

[moods.happy]
tags = ["bright"]
categories = ["lead"]
energy = 0.1

[[sections]]
name = "Intro"
role = "intro"
bars = [8, 16]
energy = 0.3
lanes = ["kick", "chord"]
variation = ["+hihat"]

[[sections]]
name = "Drop"
role = "drop"
bars = 16
energy = 0.9
lanes = ["kick", "hihat", "bass", "lead"]
optional_lanes = ["perc"]
variation = ["+cymbal", "-lead"]

[[sections]]
name = "Outro"
role = "outro"
bars = 8
energy = 0.2
lanes = ["kick", "chord"]
variation = ["-chord"]
optional = false
"""


@pytest.fixture(scope="module")
def rules():
    return load_rules(RULES)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A copy of the shipped rules a test may break."""
    target = tmp_path / "rules"
    shutil.copytree(RULES / "genres", target / "genres")
    shutil.copy(RULES / "lexicon.toml", target / "lexicon.toml")
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def load_error(rules_dir: Path) -> str:
    with pytest.raises(RuleError) as caught:
        load_rules(rules_dir)
    return str(caught.value)


# -- the shipped rules ------------------------------------------------------------------------
def test_every_shipped_rule_file_loads(rules):
    files = {path.stem for path in (RULES / "genres").glob("*.toml")}
    assert set(rules.genres) == files
    assert files >= REQUIRED_GENRES
    assert rules.lexicon.fallback_genre in rules.genres
    assert len(rules.lexicon.moods) >= 12 and set(rules.lexicon.tag_categories) <= set(TAGS)


@pytest.mark.parametrize("genre", sorted(REQUIRED_GENRES))
def test_shipped_genre_templates_are_real_arrangements(rules, genre):
    rules_of = rules.genres[genre]
    roles = [section.role for section in rules_of.sections]
    assert roles[0] == "intro" and roles[-1] == "outro" and set(roles) <= set(ROLES)
    assert roles.count("drop") >= 2 and "breakdown" in roles
    energies = [section.energy for section in rules_of.sections]
    assert energies[0] < max(energies) > energies[-1]
    assert rules_of.bpm_min <= rules_of.bpm_default <= rules_of.bpm_max
    seconds_per_bar = BEATS_PER_BAR * 60 / rules_of.bpm_default
    shortest = sum(min(section.bars) for section in rules_of.sections) * seconds_per_bar
    longest = sum(max(section.bars) for section in rules_of.sections) * seconds_per_bar
    assert 170 <= shortest <= longest <= 360, "default length should be about 3-5 minutes"
    for word in (genre.replace("_", " "), *rules_of.synonyms):
        assert rules.lexicon.lookup(word).genres == {genre}, word


def test_lanes_and_tags_use_the_fixed_vocabularies(rules):
    for genre in rules.genres.values():
        for section in genre.sections:
            assert set(section.lanes) | set(section.optional_lanes) <= set(CATEGORIES)
        assert all(set(lane.tags) <= set(TAGS) for lane in genre.lanes.values())
    for effect in rules.lexicon.moods.values():
        assert set(effect.tags) <= set(TAGS) and set(effect.categories) <= set(CATEGORIES)


# -- the lexicon --------------------------------------------------------------------------------
@pytest.mark.parametrize("word, terms", [
    ("düster", {"dark"}), ("duester", {"dark"}), ("duster", {"dark"}), ("Düsterer", {"dark"}),
    ("Fläche", {"pad"}), ("Flaeche", {"pad"}), ("flache", {"pad"}), ("Flächen", {"pad"}),
    ("Stimme", {"vocal"}), ("treibende", {"driving"}), ("metallisch", {"metallic"}),
    ("aggressiv", {"aggressive", "distorted"}), ("melancholisch", {"melancholic", "dark", "soft"}),
    ("d&b", {"drum_and_bass"}), ("Drum & Bass", {"drum_and_bass"}), ("303", {"acid"}),
    ("minimal", {"minimal", "deep"}), ("unknownword", set()), ("", set()),
])
def test_terms_for(rules, word, terms):
    assert rules.lexicon.terms_for(word) == terms


def test_lookup_separates_genres_moods_tags_and_categories(rules):
    lexicon = rules.lexicon
    assert lexicon.lookup("Verträumten").moods == {"dreamy"}
    assert lexicon.lookup("pads").categories == {"pad"}
    assert lexicon.lookup("deep house").genres == {"deep_house"}
    assert lexicon.lookup("deep").moods == {"deep"} and not lexicon.lookup("deep").genres
    assert lexicon.lookup("verzerrt").tags == {"distorted"}
    assert not lexicon.lookup("user")  # "us" + "er" is too short a stem to match


# -- validation errors ------------------------------------------------------------------------
def test_a_producer_adds_a_genre_with_one_file(rules_dir):
    (rules_dir / "genres" / "polka.toml").write_text(GOOD_GENRE, encoding="utf-8")
    rules = load_rules(rules_dir)
    assert rules.genres["polka"].bpm_default == 116
    plan = plan_prompt("Polkas, 120 bpm", rules, seed=3)
    assert (plan.genre, plan.bpm, plan.key.split()[1]) == ("polka", 120, "major")
    assert [s.section for s in plan.structure][-1] == "Outro"


@pytest.mark.parametrize("old, new, key, message", [
    ("four_on_floor = false", "four_on_floor = false\ntempoo = 3", "tempoo", "unknown key"),
    ("min = 100", "min = 140", "tempo", "min <= default <= max"),
    ("max = 130", "max = 300", "tempo.max", "between 40 and 250"),
    ("energy = 0.9", "energy = 1.5", "sections[1].energy", "between 0 and 1"),
    ("energy = 0.3", "energy = -0.1", "sections[0].energy", "between 0 and 1"),
    ("bars = 16\n", "", "sections[1].bars", "needs bars"),
    ("bars = 16\n", "bars = 0\n", "sections[1].bars", "multiples of 4"),
    ("bars = 16\n", "bars = []\n", "sections[1].bars", "needs bars"),
    ("bars = 8\n", "bars = 6\n", "sections[2].bars", "multiples of 4"),
    ('bars = [8, 16]', 'bars = [8, "16"]', "sections[0].bars", "multiples of 4"),
    ('lanes = ["kick", "chord"]', 'lanes = ["kick", "piano"]', "sections[0].lanes",
     "unknown value 'piano'"),
    ('role = "drop"', 'role = "chorus"', "sections[1].role", "must be one of"),
    ('optional_lanes = ["perc"]', 'optional_lanes = ["kick"]', "sections[1].optional_lanes",
     "already in lanes"),
    ('variation = ["+hihat"]', 'variation = ["+kick"]', "sections[0].variation",
     "does not change"),
    ('variation = ["+hihat"]', 'variation = []', "sections[0].variation", "at least one"),
    ('variation = ["-chord"]', 'variation = ["-chord", "-kick"]', "sections[2].variation",
     "at least one lane playing"),
    ('variation = ["+hihat"]', 'variation = ["hihat"]', "sections[0].variation",
     "'+' or '-'"),
    ("dark = \"minor\"", "gloomy = \"minor\"", "key.mode_by_mood.gloomy", "unknown key"),
    ("dark = \"minor\"", "dark = \"lydian\"", "key.mode_by_mood.dark", "must be one of"),
    ('tonics = ["C", "G"]', 'tonics = ["H"]', "key.tonics", "unknown value 'H'"),
    ('mode = "major"', "", "key.mode", "is required"),
    ("[lanes.kick]", "[lanes.kicks]", "lanes.kicks", "unknown key"),
    ("count = 1", "count = 9", "lanes.kick.count", "between 1 and 8"),
    ('tags = ["punchy"]', 'tags = ["crunchy"]', "lanes.kick.tags", "unknown value 'crunchy'"),
    ("energy = 0.1", "energy = 0.9", "moods.happy.energy", "between -0.3 and 0.3"),
    ('typical_moods = ["happy"]', 'typical_moods = ["sleepy"]', "typical_moods",
     "unknown value 'sleepy'"),
    ('synonyms = ["polka", "polkas"]', 'synonyms = ["polka", "dnb"]', "synonyms",
     "already names genre 'drum_and_bass'"),
    ("optional = false", "optional = 1", "sections[2].optional", "true or false"),
])
def test_bad_genre_file_names_file_and_key(rules_dir, old, new, key, message):
    path = rules_dir / "genres" / "polka.toml"
    path.write_text(GOOD_GENRE.replace(old, new, 1), encoding="utf-8")
    assert GOOD_GENRE.replace(old, new, 1) != GOOD_GENRE
    error = load_error(rules_dir)
    assert f"{path}: {key}: " in error and message in error, error


EDGES = """
[edges]
intro_bars = 8
outro_bars = 8
lanes = ["kick"]

[[sections]]
name = "Intro"
"""


def test_a_genre_may_have_dj_edges_and_fills(rules_dir):
    path = rules_dir / "genres" / "polka.toml"
    text = GOOD_GENRE.replace("four_on_floor = false", "four_on_floor = false\nfills = true")
    path.write_text(text.replace('\n[[sections]]\nname = "Intro"\n', EDGES, 1),
                    encoding="utf-8")
    genre = load_rules(rules_dir).genres["polka"]
    assert genre.fills and (genre.edges.intro_bars, genre.edges.outro_bars) == (8, 8)
    assert genre.edges.lanes == ("kick",)
    assert not load_rules(RULES).genres["ambient"].fills


@pytest.mark.parametrize("old, new, key, message", [
    ("intro_bars = 8", "intro_bars = 12", "edges.intro_bars", "must be a multiple of 8"),
    ("intro_bars = 8", "intro_bars = 32", "edges.intro_bars", "between 8 and 16"),
    ("intro_bars = 8", "intro_bars = 8.0", "edges.intro_bars", "must be an integer"),
    ("outro_bars = 8\n", "", "edges.outro_bars", "is required"),
    ("outro_bars = 8", "outro_bars = 16", "sections[2].bars",
     "the outro must hold its 16-bar DJ edge (got 8)"),
    ('lanes = ["kick"]', 'lanes = ["kicks"]', "edges.lanes", "unknown value 'kicks'"),
    ('lanes = ["kick"]', "lanes = []", "edges.lanes", "must name at least one category"),
    ('lanes = ["kick"]', 'lanes = ["kick"]\nbars = 16', "edges.bars", "unknown key"),
    ('role = "intro"', 'role = "build"', "edges",
     "needs a template whose first section is a non-optional intro"),
    ("[edges]", "[edge]", "edge", "unknown key"),
])
def test_bad_dj_edges_name_file_and_key(rules_dir, old, new, key, message):
    path = rules_dir / "genres" / "polka.toml"
    text = GOOD_GENRE.replace('\n[[sections]]\nname = "Intro"\n', EDGES, 1)
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    error = load_error(rules_dir)
    assert f"{path}: {key}: " in error and message in error, error


def test_fills_must_be_a_flag(rules_dir):
    path = rules_dir / "genres" / "polka.toml"
    path.write_text(GOOD_GENRE.replace("four_on_floor = false",
                                       'four_on_floor = false\nfills = "yes"'), encoding="utf-8")
    assert f"{path}: fills: must be true or false" in load_error(rules_dir)


def test_every_section_optional_is_an_error(rules_dir):
    path = rules_dir / "genres" / "polka.toml"
    text = GOOD_GENRE.replace("optional = false", "optional = true")
    path.write_text(text.replace('variation = ["+hihat"]', 'variation = ["+hihat"]\n'
                                 'optional = true').replace(
        '"-lead"]', '"-lead"]\noptional = true'), encoding="utf-8")
    assert "at least one section must not be optional" in load_error(rules_dir)


def test_genre_file_name_must_be_a_plain_name(rules_dir):
    (rules_dir / "genres" / "Polka Party.toml").write_text(GOOD_GENRE, encoding="utf-8")
    assert "Polka Party.toml: (file name): must be a lower-case genre name" in load_error(
        rules_dir)


def test_problems_in_several_files_are_reported_together(rules_dir):
    edit(rules_dir / "genres" / "techno.toml", "default = 132", "default = 160")
    edit(rules_dir / "genres" / "house.toml", 'role = "intro"', 'role = "opening"')
    edit(rules_dir / "lexicon.toml", 'tags = ["dark"]\n', 'tags = ["gloomy"]\n')
    error = load_error(rules_dir)
    assert "techno.toml: tempo: needs min <= default <= max" in error
    assert "house.toml: sections[0].role: must be one of" in error
    assert "lexicon.toml: moods.dark.tags: unknown value 'gloomy'" in error


@pytest.mark.parametrize("old, new, key, message", [
    ('genre = "techno"', 'genre = "polka"', "fallback.genre", "must be one of"),
    ("\n[fallback]\n", "\n[fallbacks]\n", "fallbacks", "unknown key"),
    ("[moods.dark]", "[moods.Dark]", "moods.Dark", "lower-case"),
    ("energy = 0.1\n", "energy = 0.9\n", "moods.aggressive.energy", "between -0.3 and 0.3"),
    ('categories = ["kick", "hihat", "perc", "drum_loop", "bass"]',
     'categories = ["kick", "hats"]', "moods.driving.categories", "unknown value 'hats'"),
    ("[tags.acid]", "[tags.squelchy]", "tags.squelchy", "unknown key"),
    ('"schwer", ', '"schwer", "düster", ', "moods.heavy", "already a word of 'dark'"),
    ('kick = ["kick",', 'kicks = ["kick",', "categories.kicks", "unknown key"),
    ('vocal = ["vocal",', 'vocal = ["!!!", "vocal",', "categories.vocal", "no letters"),
    ('words = ["acid",', 'word = ["acid",', "tags.acid.words", "is required"),
])
def test_bad_lexicon_names_file_and_key(rules_dir, old, new, key, message):
    path = rules_dir / "lexicon.toml"
    edit(path, old, new)
    error = load_error(rules_dir)
    assert f"{path}: {key}: " in error and message in error, error


def test_toml_syntax_error_names_file_and_line(rules_dir):
    path = rules_dir / "genres" / "techno.toml"
    edit(path, "\n[tempo]\n", "\n[tempo\n")
    error = load_error(rules_dir)
    assert str(path) in error and "invalid TOML" in error and "line" in error


def test_missing_files_are_errors(rules_dir):
    for path in (rules_dir / "genres").glob("*.toml"):
        path.unlink()
    assert "no genre files" in load_error(rules_dir)
    (rules_dir / "lexicon.toml").unlink()
    assert "lexicon.toml: file not found" in load_error(rules_dir)


def test_other_rule_files_are_ignored(rules_dir):
    (rules_dir / "patterns.toml").write_text("[default]\nkick = 1\n", encoding="utf-8")
    (rules_dir / "genres" / "notes.txt").write_text("not a genre", encoding="utf-8")
    assert "notes" not in load_rules(rules_dir).genres
