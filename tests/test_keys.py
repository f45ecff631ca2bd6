"""Keys (daemon.keys): canonical text, relative keys, shifts between keys and their fit."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.errors import PlanError
from daemon.keys import (
    THIRD_HARMONIC_SHARE,
    TONICS,
    format_key,
    key_fit,
    key_shift,
    parse_key,
    relative_key,
    with_fundamentals,
)


def test_canonical_text_round_trips_every_key():
    for tonic in range(12):
        for mode in ("major", "minor"):
            assert parse_key(format_key(tonic, mode)) == (tonic, mode)
    assert format_key(6, "minor") == "F# minor"
    assert format_key(13, "major") == "C# major"  # pitch classes wrap
    assert TONICS.index("A#") == 10


@pytest.mark.parametrize("text", ["Am", "a minor", "Bb major", "F# dorian", "", "C  major x"])
def test_non_canonical_text_is_a_plan_error_naming_where(text):
    with pytest.raises(PlanError, match=r"^plan\.key: must look like 'F# minor'"):
        parse_key(text, where="plan.key")


def test_relative_keys_share_the_scale():
    assert relative_key(9, "minor") == (0, "major")  # A minor ↔ C major
    assert relative_key(0, "major") == (9, "minor")
    assert relative_key(11, "minor") == (2, "major")  # B minor ↔ D major, across the octave
    for tonic in range(12):
        assert relative_key(*relative_key(tonic, "minor")) == (tonic, "minor")


@pytest.mark.parametrize(("stem_key", "plan_key", "shift", "relation"), [
    ("A minor", "A minor", 0, "same"),
    ("C major", "A minor", 0, "relative"),
    ("A minor", "C major", 0, "relative"),
    ("G minor", "A minor", 2, "shift"),
    ("C minor", "A minor", -3, "shift"),
    ("D minor", "A minor", -5, "shift"),  # smallest way round: down 5, not up 7
    ("D# minor", "A minor", 6, "shift"),  # a tritone: up, never down 6
    ("E major", "A minor", -4, "shift"),  # E major ≡ C# minor
])
def test_key_shift_takes_the_shortest_way_to_the_key_or_its_relative(stem_key, plan_key, shift,
                                                                     relation):
    assert key_shift(stem_key, plan_key) == (shift, relation)


@pytest.mark.parametrize(("stem_key", "fit"), [
    ("A minor", (0, 1.0)), ("C major", (0, 0.9)), ("A# minor", (-1, 0.8)),
    ("G minor", (2, 0.7)), ("C minor", (-3, 0.6)), ("D# minor", (6, 0.3)),
])
def test_key_fit_scores_same_above_relative_above_each_semitone_of_shift(stem_key, fit):
    shift, score = key_fit(stem_key, "A minor")
    assert (shift, round(score, 6)) == fit


def test_key_fit_refuses_malformed_keys():
    with pytest.raises(PlanError):
        key_fit("Am", "A minor")


def test_a_pitch_class_lends_weight_to_its_possible_fundamental_a_fifth_below():
    e_only = np.zeros(12)
    e_only[4] = 1.0  # E: the third harmonic of an A
    lent = with_fundamentals(e_only)
    assert lent[9] == pytest.approx(THIRD_HARMONIC_SHARE)  # A, a fifth below
    assert lent[4] == 1.0 and np.count_nonzero(lent) == 2
