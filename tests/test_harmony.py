"""Harmony checked by ear (daemon.render.harmony, daemon.render.chroma): the key a tonal stem
really has, kits whose labels lie, mashability, and the chroma cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from render_helpers import kit_records
from stored_kits import kit_samples

from daemon.categories import load_categories
from daemon.keys import key_scores, parse_key
from daemon.render.chroma import CHROMA_VERSION, stem_chroma
from daemon.render.harmony import (
    Ear,
    Hearing,
    correct_by_kit,
    judge,
    kit_interval,
    mashability,
    scale_fit,
)

TABLE = load_categories(Path(__file__).resolve().parents[1] / "rules")


def profile_of(key: str) -> np.ndarray:
    """A chroma sounding the key's triad, tonic loudest (index 0 = C)."""
    tonic, mode = parse_key(key)
    third = 3 if mode == "minor" else 4
    chroma = np.full(12, 0.05)
    chroma[[tonic % 12, (tonic + third) % 12, (tonic + 7) % 12]] = (1.0, 0.6, 0.8)
    return chroma


def test_the_label_stands_when_the_audio_agrees_and_falls_when_it_clearly_does_not():
    scores = key_scores(profile_of("G minor"))
    assert judge(1, "G minor", scores).source == "label"
    assert judge(1, "A# major", scores).key == "A# major"  # the relative: the same scale
    lied = judge(1, "C# minor", scores)
    assert (lied.key, lied.source, lied.overridden) == ("G minor", "audio", True)
    assert lied.describe().startswith("labelled C# minor, heard G minor")
    assert judge(1, None, scores).key == "G minor"
    silent = judge(1, "A minor", np.zeros(24))
    assert (silent.key, silent.heard, silent.source) == ("A minor", None, "label")


def test_a_root_and_fifth_line_keeps_the_labelled_mode():
    root_fifth = np.full(12, 0.05)
    root_fifth[[7, 2]] = (1.0, 0.8)  # G and D only: major or minor is the label's call
    scores = key_scores(root_fifth)
    assert judge(1, "G minor", scores).key == "G minor"
    assert judge(1, "G major", scores).key == "G major"
    assert judge(1, "A# minor", scores).key == "G minor"  # the tonic is clear, the mode kept


def hearing(label: str, heard: str, *, source: str, fit: float = 0.8) -> Hearing:
    scores = key_scores(profile_of(heard))
    return Hearing(1, label, heard, heard if source == "audio" else label, source, fit,
                   tuple(scores))


def test_a_kit_whose_labels_are_wrong_by_one_interval_corrects_its_ambiguous_stems():
    votes = [hearing("D minor", "G minor", source="audio"),
             hearing("D minor", "G minor", source="audio")]
    assert kit_interval(votes) == 5
    # Two agreeing labels outvote the two that disagree: the kit is not suspect.
    confirmed = [hearing("G minor", "G minor", source="label") for _ in range(2)]
    assert kit_interval([*votes, *confirmed]) == 0
    assert kit_interval(votes[:1]) == 0  # one disagreement is the stem's, not the kit's
    ambiguous = replace(hearing("D minor", "D minor", source="label", fit=0.7),
                        scores=tuple(key_scores(profile_of("G minor") + profile_of("D minor"))))
    corrected = correct_by_kit([*votes, ambiguous])
    assert (corrected[-1].key, corrected[-1].source) == ("G minor", "kit")
    assert scale_fit(corrected[-1].scores, "G minor") == pytest.approx(corrected[-1].fit)


def test_mashability_is_beat_synchronous_chroma_agreement():
    a = np.zeros((12, 4))
    a[[0, 3, 7, 0], range(4)] = 1.0  # C, D#, G, C on four beats
    assert mashability(a, a) == pytest.approx(1.0)
    assert mashability(a, np.roll(a, 6, axis=0)) == pytest.approx(0.0)
    two_beats = a[:, :2]  # tiles to C D# C D#: agrees on the first two beats only
    assert mashability(a, two_beats) == pytest.approx(0.5)
    assert mashability(a, np.zeros((12, 4))) == 0.5  # never sounding together: no evidence


@pytest.fixture(scope="module")
def lying_kit(tmp_path_factory):
    """A G-minor kit whose file names (and so labels) say D minor, and an honest A-minor
    kit, as records; the ear's cache in its own folder."""
    folder = tmp_path_factory.mktemp("kits")
    lying = kit_records(list(kit_samples(138.0, "G minor", 2, claimed_key="D minor")),
                        folder / "Trance", kit="Trance Anthems")
    lying = [replace(stem, key="D minor" if stem.key else None) for stem in lying]
    honest = kit_records(list(kit_samples(138.0, "A minor", 4)), folder / "Techno",
                         kit="Warehouse Techno", first_id=100)
    return lying, honest, folder / "cache"


def test_the_ear_hears_the_true_key_of_a_kit_whose_every_label_lies(lying_kit):
    lying, honest, cache = lying_kit
    ear = Ear([*lying, *honest], cache_dir=cache, categories=TABLE)
    tonal = [stem for stem in lying if stem.key]
    assert len(tonal) == 6
    assert {ear.hearings[stem.id].key for stem in tonal} == {"G minor"}
    assert all(ear.hearings[stem.id].overridden for stem in tonal)
    assert not any(ear.hearings[stem.id].overridden for stem in honest if stem.key)
    drums = [stem for stem in lying if not stem.key]
    assert not any(stem.id in ear.hearings for stem in drums)


def test_chroma_is_cached_once_per_stem_and_a_damaged_entry_is_recomputed(lying_kit):
    lying, _, cache = lying_kit
    pad = next(stem for stem in lying if "Pad" in stem.rel_path)
    first = stem_chroma(pad, cache_dir=cache)
    entry = cache / f"chroma-v{CHROMA_VERSION}-{pad.content_hash[:32]}.npy"
    assert entry.is_file() and first.shape[0] == 12
    assert np.array_equal(stem_chroma(replace(pad, path=Path("/gone.wav")), cache_dir=cache),
                          first)  # served from the cache: the file is not read again
    entry.write_bytes(b"damaged")
    assert np.array_equal(stem_chroma(pad, cache_dir=cache), first)


def test_rolling_the_chroma_is_shifting_the_audio(lying_kit):
    _, honest, cache = lying_kit
    pad = next(stem for stem in honest if "Pad" in stem.rel_path)
    ear = Ear([pad], cache_dir=cache, categories=TABLE)
    beats = ear.beats(pad, source_bpm=138.0, semitones=0)
    assert beats.shape[1] == 8  # two bars of four beats
    up = ear.beats(pad, source_bpm=138.0, semitones=3)
    assert mashability(np.roll(beats, 3, axis=0), up) == pytest.approx(1.0)
    scores = key_scores(np.roll(stem_chroma(pad, cache_dir=cache).sum(axis=1), 3))
    assert judge(pad.id, None, scores).key == "C minor"  # A minor up three semitones
