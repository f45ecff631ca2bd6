"""parse_prompt: tempo, key, length and seed forms, words in two languages, overrides, notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.compose.prompt import Intent, parse_prompt
from daemon.compose.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lexicon():
    return load_rules(ROOT / "rules").lexicon


def parse(text: str, lexicon) -> Intent:
    return parse_prompt(text, lexicon)


@pytest.mark.parametrize("text, bpm", [
    ("138 bpm", 138), ("138bpm", 138), ("138 BPM", 138), ("tempo 138", 138),
    ("bpm: 138", 138), ("BPM=138", 138), ("138-bpm techno", 138), ("128,5 bpm", 128.5),
    ("Tempo 100, Hip Hop", 100), ("techno\ntempo: 141", 141), ("174.5bpm", 174.5),
])
def test_tempo_forms(lexicon, text, bpm):
    assert parse(text, lexicon).bpm == bpm


@pytest.mark.parametrize("text, key", [
    ("in F minor", "F minor"), ("Fm", "F minor"), ("F#m", "F# minor"), ("C# minor", "C# minor"),
    ("Bb major", "A# major"), ("Bbm", "A# minor"), ("e flat minor", "D# minor"),
    ("f sharp major", "F# major"), ("Cmaj", "C major"), ("Amin", "A minor"),
    ("b minor", "B minor"), ("Eb major", "D# major"),
    # German: h = B, b = Bb, -is sharp, -es / -s flat
    ("f-moll", "F minor"), ("A-Dur", "A major"), ("fis-moll", "F# minor"),
    ("b-moll", "A# minor"), ("h-moll", "B minor"), ("es-dur", "D# major"),
    ("As-Dur", "G# major"), ("cis-moll", "C# minor"), ("des-dur", "C# major"),
    ("E-Moll", "E minor"), ("H-Dur", "B major"), ("gis moll", "G# minor"),
])
def test_key_forms(lexicon, text, key):
    assert parse(f"techno {text} 130 bpm", lexicon).key == key


@pytest.mark.parametrize("text", [
    "Am Abend am Meer",       # German preposition before a noun, not A minor
    "FM synth bass",          # frequency modulation, capital M
    "a techno track",         # an article is not a key
    "the minor details",      # no tonic letter of its own
    "90s hip hop",            # the nineties
])
def test_words_that_look_like_keys_are_not_keys(lexicon, text):
    assert parse(text, lexicon).key is None


@pytest.mark.parametrize("text, seconds, bars", [
    ("3 minutes", 180, None), ("3 min", 180, None), ("3:30", 210, None), ("5 min", 300, None),
    ("128 bars", None, 128), ("90 seconds", 90, None), ("3 Minuten", 180, None),
    ("128 Takte", None, 128), ("2,5 Minuten", 150, None), ("3 min 30 sec", 210, None),
    ("3 minutes and 15 seconds", 195, None), ("1 hour", 3600, None), ("64 bar", None, 64),
    ("a 4-minute track", 240, None), ("Länge 32 Takten", None, 32),
])
def test_length_forms(lexicon, text, seconds, bars):
    intent = parse(f"house {text}", lexicon)
    assert (intent.length_seconds, intent.length_bars) == (seconds, bars)


@pytest.mark.parametrize("text", ["seed 7", "seed: 7", "Seed=7", "techno seed 7 130 bpm"])
def test_seed_forms(lexicon, text):
    assert parse(text, lexicon).seed == 7


@pytest.mark.parametrize("word", ["düster", "duester", "duster", "DÜSTER", "du\u0308ster",
                                  "düsterer", "düsteren", "dunkle", "dunklen", "dark"])
def test_umlauts_case_and_german_endings(lexicon, word):
    assert parse(f"{word} techno", lexicon).moods == ("dark",)


def test_german_prompt_reads_like_the_english_one(lexicon):
    german = parse("aggressiver düsterer Techno 135 bpm", lexicon)
    english = parse("aggressive dark techno 135 bpm", lexicon)
    assert (german.genre, german.bpm, german.moods) == ("techno", 135, ("aggressive", "dark"))
    assert (english.genre, english.bpm, english.moods) == (german.genre, german.bpm, german.moods)


@pytest.mark.parametrize("text, genre", [
    ("dnb", "drum_and_bass"), ("D&B", "drum_and_bass"), ("Drum & Bass", "drum_and_bass"),
    ("drum'n'bass", "drum_and_bass"), ("drum and bass", "drum_and_bass"),
    ("hip-hop", "hip_hop"), ("HipHop", "hip_hop"), ("Lo-Fi", "lofi"), ("lo fi", "lofi"),
    ("lofi hip hop", "lofi"), ("deep house", "deep_house"), ("Deephouse", "deep_house"),
    ("minimal techno", "minimal"), ("Tekkno", "techno"), ("Elektro", "electro"),
    ("big beat", "breakbeat"), ("psytrance", "trance"), ("brostep", "dubstep"),
    ("soundscape", "ambient"),
])
def test_genre_synonyms_and_phrases(lexicon, text, genre):
    assert parse(text, lexicon).genre == genre


def test_longest_phrase_wins_over_its_words(lexicon):
    intent = parse("deep house", lexicon)
    assert intent.genre == "deep_house" and intent.moods == ()
    assert parse("deep techno", lexicon).moods == ("deep",)


def test_tags_and_categories_named_in_the_prompt(lexicon):
    intent = parse("acid techno mit Fläche und Stimme, verzerrt", lexicon)
    assert intent.tags == ("acid", "pad", "vocal", "distorted")


def test_two_tempi_the_last_wins_with_a_note(lexicon):
    intent = parse("techno 128 bpm, no wait, 140 bpm", lexicon)
    assert intent.bpm == 140
    assert any("'128 bpm'" in note and "'140 bpm', wins" in note for note in intent.notes)


def test_two_keys_and_two_lengths_the_last_wins(lexicon):
    intent = parse("in F minor 3 min ... better a-moll, 128 bars", lexicon)
    assert (intent.key, intent.length_bars, intent.length_seconds) == ("A minor", 128, None)
    assert sum(note.startswith(("key:", "length:")) for note in intent.notes) == 2


def test_two_genres_the_first_wins_with_a_note(lexicon):
    intent = parse("techno with deep house chords", lexicon)
    assert intent.genre == "techno"
    assert any("first one, 'techno'" in note for note in intent.notes)


@pytest.mark.parametrize("text, bpm", [("900 bpm", 250), ("10 bpm", 40), ("0 bpm", 40)])
def test_out_of_range_tempo_is_clamped_with_a_note(lexicon, text, bpm):
    intent = parse(f"techno {text}", lexicon)
    assert intent.bpm == bpm
    assert any("clamped" in note for note in intent.notes)


def test_a_bare_number_is_a_tempo_only_without_a_real_one(lexicon):
    assert parse("techno 130", lexicon).bpm == 130
    assert parse("techno 130 and 140 bpm", lexicon).bpm == 140
    assert parse("techno 2024", lexicon).bpm is None  # outside the usual tempo range
    assert parse("303 acid", lexicon).tags == ("acid",)  # the number stays a word


def test_override_lines_beat_the_free_text(lexicon):
    text = ("dark techno 128 bpm in F minor, 3 minutes, seed 1\n"
            "bpm: 140\nKey: a-moll\nlength: 2:00\ngenre: house\nseed: 9\n")
    intent = parse(text, lexicon)
    assert (intent.genre, intent.bpm, intent.key) == ("house", 140, "A minor")
    assert (intent.length_seconds, intent.seed, intent.moods) == (120, 9, ("dark",))
    assert sum("line" in note and "overrides" in note for note in intent.notes) == 5


def test_german_override_names(lexicon):
    intent = parse("Stil: Drum and Bass\nTonart: fis-moll\nLänge: 64 Takte\nTempo: 172", lexicon)
    assert (intent.genre, intent.key, intent.length_bars, intent.bpm) == (
        "drum_and_bass", "F# minor", 64, 172)


def test_rest_of_an_override_line_is_still_free_text(lexicon):
    intent = parse("key: F minor, dark techno\ngenre: house, warm", lexicon)
    assert (intent.key, intent.genre, intent.moods) == ("F minor", "house", ("warm", "dark"))


def test_unreadable_override_is_ignored_with_a_note(lexicon):
    intent = parse("genre: polka\nbpm: fast\nseed: x\ntechno", lexicon)
    assert (intent.genre, intent.bpm, intent.seed) == ("techno", None, None)
    ignored = [note for note in intent.notes if note.startswith("ignored the line")]
    assert len(ignored) == 3
    assert parse("bpm: fast", lexicon).moods == ()  # unknown words stay unknown


def test_zero_length_is_ignored_with_a_note(lexicon):
    intent = parse("techno 0 bars", lexicon)
    assert intent.length_bars is None and any("zero" in note for note in intent.notes)


def test_empty_prompt_gives_an_empty_intent_with_a_note(lexicon):
    intent = parse("  \n ", lexicon)
    assert intent == Intent(text="", notes=intent.notes)
    assert "empty prompt" in intent.notes[0]


@pytest.mark.parametrize("text", ["12345 678 1", "🔥🎧🌙✨💀", "%%% ??? ---", "lorem ipsum dolor"])
def test_prompts_without_known_words_note_it(lexicon, text):
    intent = parse(text, lexicon)
    assert (intent.genre, intent.bpm, intent.key, intent.moods) == (None, None, None, ())
    assert "no known word" in intent.notes[0]


def test_emoji_between_words_do_not_hide_them(lexicon):
    intent = parse("🔥düster🔥 techno🎧 135bpm 🌙", lexicon)
    assert (intent.genre, intent.bpm, intent.moods) == ("techno", 135, ("dark",))


def test_ten_kilobytes_of_text(lexicon):
    text = "trance 136 bpm in e-moll " + "words nobody knows here " * 430
    assert len(text.encode()) > 10_000
    intent = parse(text, lexicon)
    assert (intent.genre, intent.bpm, intent.key) == ("trance", 136, "E minor")
    assert intent.text == text.strip()


def test_many_repeated_values_keep_the_note_short(lexicon):
    text = " ".join(f"{bpm} bpm" for bpm in range(100, 180))
    intent = parse(text, lexicon)
    assert intent.bpm == 179
    assert len(intent.notes) == 1 and len(intent.notes[0]) < 200
