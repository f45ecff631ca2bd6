"""`rank_text` / `TextIndex`: field weights, coverage, German expansions, folding, limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.embed.textsearch import TextIndex, query_terms, rank_text, search_tokens
from daemon.store.records import StemRecord

LEXICON = {"düster": {"dark"}, "fläche": {"pad"}, "hi-hat": {"hihat"}, "treibend": {"driving"}}


def expand(word: str) -> set[str]:
    return LEXICON.get(word, set())


def stem(stem_id: int, *, category: str = "fx", tags: tuple[str, ...] = (),
         kit: str = "Kit", rel_path: str = "sound.wav") -> StemRecord:
    return StemRecord(
        id=stem_id, kit=kit, path=Path("/lib") / rel_path, rel_path=rel_path,
        category=category, kind="loop", bpm=120.0, key=None, duration=8.0, sample_rate=44100,
        channels=2, lufs=-14.0, peak_db=-1.0, tags=tags, content_hash=f"h{stem_id}")


def ids(results) -> list[int]:
    return [record.id for record, _ in results]


def test_category_beats_tag_beats_kit_beats_file_token_beats_substring():
    stems = [stem(1, rel_path="bigpadsound.wav"), stem(2, rel_path="Pad_01.wav"),
             stem(3, kit="Pad Paradise"), stem(4, tags=("pad",)), stem(5, category="pad"),
             stem(6, rel_path="kick.wav")]
    results = rank_text("pad", stems)
    assert ids(results) == [5, 4, 3, 2, 1]
    scores = [score for _, score in results]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 5
    assert scores[0] == pytest.approx(1.0)


def test_matching_all_words_beats_matching_one_word_strongly():
    stems = [stem(1, category="pad", tags=("pad", "warm")),  # one word, best fields
             stem(2, rel_path="dark_stuff/airy-pad.wav"),  # both words, weakest fields
             stem(3, category="bass", tags=("dark",))]
    assert ids(rank_text("dark pad", stems)) == [2, 1, 3]


def test_german_words_reach_english_metadata_through_the_expander():
    stems = [stem(1, category="pad", tags=("dark",)), stem(2, category="pad", tags=("bright",)),
             stem(3, category="hihat", tags=("driving",))]
    assert ids(rank_text("düster Fläche", stems, expand=expand)) == [1, 2]
    assert ids(rank_text("treibend hi-hat", stems, expand=expand)) == [3]
    assert rank_text("düster Fläche", stems) == []  # without the lexicon nothing matches


def test_literal_hits_outrank_expansion_hits_of_the_same_field():
    stems = [stem(1, category="dark"), stem(2, category="düster")]
    assert ids(rank_text("düster", stems, expand=expand)) == [2, 1]


def test_folding_and_splitting_of_names():
    assert search_tokens("Düster FLÄCHE Straße Café") == ("duester", "flaeche", "strasse",
                                                          "cafe")
    assert {"dark", "pad", "120", "darkpad120"} <= set(search_tokens("DarkPad120"))
    assert {"hi", "hat", "hihat"} <= set(search_tokens("Hi-Hat_Closed"))
    assert "a" not in search_tokens("Kick A")
    stems = [stem(1, rel_path="Drums/DuesterKick_01.WAV"), stem(2, rel_path="Drums/Snare.wav")]
    assert ids(rank_text("düster", stems)) == [1]
    assert ids(rank_text("KICK", stems)) == [1]
    assert ids(rank_text("drums", stems)) == [1, 2]  # folder names count as file name


def test_query_terms_mark_expansions_with_a_lower_factor():
    words = query_terms("Düster, pad", expand=expand)
    assert words[0]["duester"] == 1.0 and words[0]["dark"] == pytest.approx(0.9)
    assert words[1] == {"pad": 1.0}
    assert query_terms("  - , ") == []


def test_limit_ties_and_empty_inputs():
    stems = [stem(stem_id, category="kick") for stem_id in (7, 3, 5, 1)]
    assert ids(rank_text("kick", stems, limit=3)) == [1, 3, 5]
    assert rank_text("kick", stems, limit=0) == []
    assert rank_text("", stems) == []
    assert rank_text("kick", []) == []
    assert rank_text("snare", stems) == []


def test_an_index_answers_many_queries_like_rank_text():
    stems = [stem(1, category="bass", kit="Night Drive", tags=("dark", "driving")),
             stem(2, category="lead", kit="Sunny Day", rel_path="bright_lead.wav"),
             stem(3, category="bass", kit="Sunny Day", tags=("bright",))]
    index = TextIndex(stems)
    for query in ("bass", "sunny bright", "night driving bass", "lead"):
        assert index.rank(query, expand=expand) == rank_text(query, stems, expand=expand)
    assert ids(index.rank("sunny bright")) == [3, 2]  # tag "bright" beats file name
