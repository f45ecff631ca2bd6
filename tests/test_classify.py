"""Categories from names (English and German) and from audio; rules validation."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from daemon.errors import AnalysisError, RuleError
from daemon.ingest.analyse import analyse_stem
from daemon.ingest.classify import (
    CategoryClassifier,
    bootstrap_classifier,
    category_from_name,
    kind_from_name,
)
from daemon.ingest.rules import TAXONOMY, load_analysis_rules, tokenize

ROOT = Path(__file__).resolve().parents[1]
LMMS = Path("/usr/share/lmms/samples")


@pytest.fixture(scope="module")
def rules():
    return load_analysis_rules(ROOT / "rules")


@pytest.fixture(scope="module")
def classifier() -> CategoryClassifier:
    """A small bootstrap (3 kits; the pipeline uses 18) on seeds disjoint from the tests'."""
    return bootstrap_classifier(seed=0, kits=3)


@pytest.mark.parametrize(("name", "category"), [
    ("Kick 01.wav", "kick"), ("BD_Hard.wav", "kick"), ("Bassdrum_909.wav", "kick"),
    ("Bass Drum Deep.wav", "kick"), ("Snare_Tight.wav", "snare"), ("SD 03.wav", "snare"),
    ("Clap_Wide.wav", "clap"), ("HH_Closed.wav", "hihat"), ("Open Hat 2.wav", "hihat"),
    ("OH_Long.wav", "hihat"), ("HiHat_Pedal.wav", "hihat"), ("Ride_Bell.wav", "cymbal"),
    ("Crash_Reverse.wav", "cymbal"), ("Becken_01.wav", "cymbal"), ("Tom_Low.wav", "tom"),
    ("Perc_Metal.wav", "perc"), ("Shaker_16th.wav", "perc"), ("Bass_Rolling.wav", "bass"),
    ("Sub_Hit.wav", "bass"), ("Reese Bass Am.wav", "bass"), ("Synth Bass 02.wav", "bass"),
    ("Lead_Saw.wav", "lead"), ("Synth_Stab_Pluck.wav", "chord"), ("Pad_Warm.wav", "pad"),
    ("Fläche_Dunkel.wav", "pad"), ("Flaeche 3.wav", "pad"), ("Chord_Stab.wav", "chord"),
    ("Akkord_Moll.wav", "chord"), ("Arp_Plucky.wav", "arp"), ("Vox_Chop.wav", "vocal"),
    ("Vocal_Hey.wav", "vocal"), ("Stimme_01.wav", "vocal"), ("FX_Riser.wav", "fx"),
    ("White Noise Sweep.wav", "fx"), ("Impact_Big.wav", "fx"), ("Sub Drop.wav", "fx"),
    ("Atmo_Night.wav", "atmo"), ("Drone_Low.wav", "atmo"), ("Ambience_Rain.wav", "atmo"),
    ("Drum Loop 128.wav", "drum_loop"), ("Kick Loop 01.wav", "drum_loop"),
    ("Top Loop Shuffle.wav", "drum_loop"), ("Beat_03.wav", "drum_loop"),
    ("Schlagzeug_Groove.wav", "drum_loop"), ("DarkKick_02.wav", "kick"),
    ("Kicks/01.wav", "kick"), ("Drums/Snares/Tight 01.wav", "snare"),
    ("Bass Loops/Kick_Loop_01.wav", "drum_loop"),  # the file name beats the folder
    ("Synth Loops/TE_Pad_Dark_128bpm_Am.wav", "pad"),
    ("bassloops/briff01.ogg", "bass"), ("Stringsnpads/Chorus.wav", "pad"),  # glued words
])
def test_category_from_name(rules, name: str, category: str) -> None:
    guess = category_from_name(name, rules)
    assert guess is not None and guess.category == category
    assert guess.source == "filename"


def test_folder_hint_is_weaker_than_the_file_name(rules) -> None:
    assert category_from_name("Kicks/01.wav", rules).confidence < category_from_name(
        "Kick 01.wav", rules).confidence


@pytest.mark.parametrize("name", ["sample_07.wav", "Untitled 3.wav", "Amen.wav",
                                  "Kit/Misc/Thing.wav"])
def test_no_category_in_name(rules, name: str) -> None:
    assert category_from_name(name, rules) is None


@pytest.mark.parametrize(("name", "kind"), [
    ("Bass Loop 128.wav", "loop"), ("Loops/Bass 128.wav", "loop"), ("Kick One Shot.wav", "oneshot"),
    ("Stab_OneShot.wav", "oneshot"), ("Perc-One-Shot.wav", "oneshot"), ("Snare Hit.wav", "oneshot"),
    ("Kick 01.wav", None),
])
def test_kind_from_name(rules, name: str, kind: str | None) -> None:
    assert kind_from_name(name, rules) == kind


def test_tokenize() -> None:
    assert tokenize("DarkKick_01-Fläche.wav") == ["dark", "kick", "01", "flaeche", "wav"]
    assert tokenize("HHClosed 128BPM") == ["hh", "closed", "128", "bpm"]


def test_rules_cover_the_fixed_taxonomy(rules) -> None:
    assert tuple(rules.categories) == TAXONOMY
    assert all(rule.phrases for rule in rules.categories.values())


def test_rule_errors_name_file_and_key(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    categories = tmp_path / "rules" / "categories.toml"
    text = categories.read_text().replace("priority = 90", "priority = \"high\"")
    categories.write_text(text.replace("[categories.tom]", "[categories.tomm]", 1))
    tags = tmp_path / "rules" / "tags.toml"
    tags.write_text(tags.read_text().replace('descriptor = "centroid_hz"',
                                             'descriptor = "brightness"', 1))
    with pytest.raises(RuleError) as caught:
        load_analysis_rules(tmp_path / "rules")
    message = str(caught.value)
    assert "categories.toml: categories.kick.priority: must be an integer" in message
    assert "categories.toml: categories.tomm: unknown key" in message
    assert "categories.toml: categories.tom: is required" in message
    assert "tags.toml: audio[0].descriptor: must be one of" in message


def test_rules_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "categories.toml").write_text("[categories\n")
    (tmp_path / "tags.toml").write_text("")
    with pytest.raises(RuleError, match="categories.toml: invalid TOML"):
        load_analysis_rules(tmp_path)


def test_classifier_learns_categories_from_synth_kits(rules, classifier, anonymous_kit) -> None:
    right = 0
    for sample in anonymous_kit:
        analysis = analyse_stem(sample.audio, sample.sample_rate, name=sample.name,
                                rules=rules, classifier=classifier)
        assert analysis.category_source == "audio"
        assert 0.0 < analysis.category_confidence <= 1.0
        right += analysis.category == sample.category
    # Measured 100 % with the full 18-kit bootstrap on 144 held-out stems (bench).
    assert right / len(anonymous_kit) >= 0.85


def test_classifier_round_trip(tmp_path: Path, classifier, anonymous_kit, rules) -> None:
    path = tmp_path / "cache" / "classifier.npz"
    path.parent.mkdir()
    classifier.save(path)
    loaded = CategoryClassifier.load(path)
    for sample in anonymous_kit[:6]:
        vector = analyse_stem(sample.audio, sample.sample_rate, name="x.wav", rules=rules,
                              classifier=classifier).features
        assert loaded.predict(vector) == pytest.approx(classifier.predict(vector))
    assert not list(path.parent.glob(".*part"))  # written atomically


def test_classifier_refuses_bad_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    with pytest.raises(AnalysisError, match="cannot read the classifier"):
        CategoryClassifier.load(garbage)
    stale = tmp_path / "stale.npz"
    np.savez(stale, features=np.zeros((2, 3), np.float32), categories=np.array(["a", "b"]),
             seed=np.int64(0), feature_version=np.int64(-1))
    with pytest.raises(AnalysisError, match="feature version -1"):
        CategoryClassifier.load(stale)


def test_classifier_input_checks() -> None:
    untrained = CategoryClassifier()
    with pytest.raises(AnalysisError):
        untrained.predict(np.zeros(4))
    with pytest.raises(ValueError):
        untrained.fit(np.zeros((3, 4)), ["kick", "kick", "kick"])
    trained = CategoryClassifier()
    trained.fit(np.array([[0.0, 0.0], [1.0, 1.0], [0.1, 0.0], [0.9, 1.0]]),
                ["kick", "hihat", "kick", "hihat"])
    assert trained.predict(np.array([0.95, 0.9]))[0] == "hihat"
    with pytest.raises(AnalysisError):
        trained.predict(np.array([np.nan, 1.0]))


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_accuracy",
                                                  ROOT / "bench" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


@pytest.mark.lmms
def test_lmms_categories_from_names(rules) -> None:
    if not LMMS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{LMMS} is missing on CI: install Debian's lmms-common")
        pytest.skip(f"{LMMS} not found (Debian package lmms-common)")
    truths = _load_bench().lmms_ground_truth(LMMS)
    named = [(truth, category_from_name(truth.rel_path, rules)) for truth in truths]
    right = sum(guess is not None and guess.category == truth.category
                for truth, guess in named)
    # Measured 151 of 160: the misses are files named "synth" in lmms' bass folders
    # (the file name wins by design) and "nasty_bass01", a kick in drums/.
    assert len(truths) >= 150
    assert right / len(truths) >= 0.93
