"""Folding and tokenising (daemon.text), and that a word means the same wherever the rules
read it: the lexicon, the ingest name rules, category phrases, text search and the renderer."""

from __future__ import annotations

import random
import string
from dataclasses import replace
from pathlib import Path

import pytest
from render_helpers import fake_record

from daemon.categories import read_phrases
from daemon.compose.lexicon import phrase_key
from daemon.compose.rules import load_rules
from daemon.embed.textsearch import rank_text, search_tokens
from daemon.ingest.classify import category_from_name
from daemon.ingest.rules import load_analysis_rules, name_parts
from daemon.render.select import stem_words
from daemon.text import fold, tokenize, transliterate
from daemon.tomlcheck import Checker

RULES = Path(__file__).resolve().parents[1] / "rules"


@pytest.mark.parametrize("text, folded", [
    ("Fläche", "flaeche"), ("FLÄCHE", "flaeche"), ("Straße", "strasse"), ("STRASSE", "strasse"),
    ("STRAẞE", "strasse"), ("Düster Café", "duester cafe"), ("Ölfass", "oelfass"),
    ("Fla\u0308che", "flaeche"),  # a decomposed umlaut is the same letter
    ("ﬁlter", "filter"), ("ＫＩＣＫ", "kick"), ("Kick", "kick"),
])
def test_fold_writes_umlauts_out_drops_accents_and_case(text, folded):
    assert fold(text) == folded


def test_transliterate_keeps_case_and_word_boundaries():
    assert transliterate("FLÄCHE Äpfel Straße") == "FLAECHE Aepfel Strasse"
    assert transliterate("düster", plain=True) == "duster"
    assert fold("Düster", plain=True) == "duster"


def test_tokenize_options():
    assert tokenize("DarkKick_01-Fläche.wav") == ("dark", "kick", "01", "flaeche", "wav")
    assert tokenize("HHClosed 128BPM") == ("hh", "closed", "128", "bpm")
    assert tokenize("ÄRGERKick") == ("aerger", "kick")  # a capital umlaut keeps the word whole
    assert tokenize("HiHat 128bpm", split_camel=False) == ("hihat", "128bpm")
    assert tokenize("Kick A fx", min_length=2) == ("kick", "fx")
    assert tokenize("drum & bass, d&b", split_camel=False, joiners="&") == ("drum", "&", "bass",
                                                                             "d&b")
    assert tokenize("d&b") == ("d", "b")
    assert tokenize("東京 Kit") == ("東京", "kit")  # any script is a word, not a gap
    assert tokenize("__--..") == ()


def test_ascii_names_split_as_any_other_text():
    """Plain ASCII names take a one-pass shortcut; it must split exactly like the general
    path, which a trailing non-ASCII word forces."""
    rng = random.Random(13)
    alphabet = string.ascii_letters + string.digits + "_- ./&"
    for _ in range(20_000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert tokenize(name) == tokenize(f"{name} ß")[:-1], name


@pytest.mark.parametrize("word, name_tokens, lexicon_tokens", [
    ("Fläche", ("flaeche",), ("flaeche",)),
    ("FLÄCHE", ("flaeche",), ("flaeche",)),
    ("Straße", ("strasse",), ("strasse",)),
    ("STRASSE", ("strasse",), ("strasse",)),
    ("HiHat_01", ("hi", "hat", "01"), ("hihat", "01")),
    ("Kick-Loop", ("kick", "loop"), ("kick", "loop")),
])
def test_a_word_tokenises_the_same_wherever_the_rules_use_it(word, name_tokens, lexicon_tokens):
    """Names split at camelCase (ingest, category phrases, the renderer); the lexicon reads
    prompts whole; text search indexes both, so either spelling finds a stem."""
    assert name_parts(f"Kit/{word}.wav")[0] == name_tokens
    check = Checker("categories.toml")
    assert read_phrases(check, {"tokens": [word]}, "categories.pad", "tokens") == (name_tokens,)
    assert check.problems == []
    stem = replace(fake_record(1, "pad", tags=()), rel_path=f"Kit/{word}.wav")
    assert set(name_tokens) <= stem_words(stem)
    assert phrase_key(word) == lexicon_tokens
    assert set(name_tokens) | set(lexicon_tokens) <= set(search_tokens(word))


@pytest.mark.parametrize("spelling", ["Fläche", "FLÄCHE", "flaeche", "FLAECHE", "Flaeche"])
def test_one_spelling_means_one_thing_to_the_lexicon_the_name_rules_and_search(spelling):
    lexicon = load_rules(RULES).lexicon
    assert lexicon.terms_for(spelling) == {"pad"}
    assert category_from_name(f"Kit/{spelling} 01.wav",
                              load_analysis_rules(RULES)).category == "pad"
    stems = [replace(fake_record(1, "kick"), rel_path="Drums/Kick.wav"),
             replace(fake_record(2, "synth"), rel_path="Synths/FLÄCHE_Warm.wav")]
    assert [stem.id for stem, _ in rank_text(spelling, stems)] == [2]
