"""analyse_stem and its parts on synthesised signals with known tempo, key and level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from daemon.errors import AnalysisError
from daemon.ingest.analyse import analyse_stem, measure_levels
from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.key import estimate_key, key_from_name
from daemon.ingest.kit_tempo import choose_loop_tempo
from daemon.ingest.rules import load_analysis_rules
from daemon.ingest.tempo import bpm_from_name, estimate_tempo
from daemon.keys import TONICS

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
SR = 44100


@pytest.fixture(scope="module")
def rules():
    return load_analysis_rules(RULES_DIR)


# --- signal builders (numpy only; ground truth by construction) -----------------------

def click_track(bpm: float, seconds: float, *, rate: int = SR, offbeat_hats: bool = False,
                seed: int = 0) -> np.ndarray:
    """Stereo ``(2, n)``: a decaying 60 Hz thump on every beat, optional noise hats."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    out = np.zeros(n)
    thump_t = np.arange(int(0.15 * rate)) / rate
    thump = np.sin(2 * np.pi * 60 * thump_t) * np.exp(-thump_t / 0.03)
    hat = rng.standard_normal(int(0.03 * rate)) * np.exp(-np.arange(int(0.03 * rate)) / 200)
    period = 60.0 / bpm
    for beat in range(int(seconds / period) + 1):
        for onset, sound, gain in ((0.0, thump, 0.8), (0.5, hat, 0.2 * offbeat_hats)):
            start = int(round((beat + onset) * period * rate))
            if gain and start < n:
                piece = sound[: n - start]
                out[start:start + len(piece)] += gain * piece
    return np.stack([out, out]).astype(np.float32)


def saw(freq: float, t: np.ndarray) -> np.ndarray:
    """Band-limited sawtooth (partials below 8 kHz), so no rate aliases differently."""
    partials = range(1, int(8000 // freq) + 1)
    return sum(np.sin(2 * np.pi * k * freq * t) / k for k in partials) * (2 / np.pi)


def chord_loop(key: str, seconds: float, *, rate: int = SR) -> np.ndarray:
    """Sustained saw triads i-iv-v-i (or I-IV-V-I) over a root bass, stereo."""
    tonic = TONICS.index(key.split()[0])
    third = 3 if key.endswith("minor") else 4
    degrees = ((0, third, 7), (5, 5 + third + (key.endswith("major")), 12),
               (7, 7 + third + (key.endswith("major")), 14), (0, third, 7))
    length = int(seconds * rate / 4)
    t = np.arange(length) / rate
    bars = []
    for chord in degrees:
        notes = [36 + tonic + chord[0]] + [60 + tonic + step for step in chord]
        bars.append(sum(saw(440 * 2 ** ((note - 69) / 12), t) for note in notes))
    mono = 0.1 * np.concatenate(bars)
    return np.stack([mono, mono]).astype(np.float32)


def sine(freq: float, seconds: float, *, amplitude: float = 0.5, rate: int = SR,
         decay: float | None = None) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.exp(-t / decay) if decay else 1.0
    return (amplitude * envelope * np.sin(2 * np.pi * freq * t))[None, :].astype(np.float32)


def noise_hat(seconds: float = 0.25, *, rate: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    bright = np.diff(rng.standard_normal(n + 1))  # first difference: energy rises with f
    return (0.3 * bright * np.exp(-np.arange(n) / (0.03 * rate)))[None, :].astype(np.float32)


# --- tempo ------------------------------------------------------------------------------

@pytest.mark.parametrize("bpm", [98.0, 128.0, 133.3, 174.0])
def test_tempo_is_precise_on_clean_material(bpm: float) -> None:
    estimate, confidence = estimate_tempo(y=click_track(bpm, 20.0, offbeat_hats=True)[0],
                                          sample_rate=SR, min_bpm=bpm / 1.4,
                                          max_bpm=bpm * 1.4)
    assert abs(estimate / bpm - 1) < 0.001  # < 0.1 %
    assert confidence > 0.5


def test_tempo_of_noise_has_low_confidence() -> None:
    noise = np.random.default_rng(3).standard_normal(8 * SR).astype(np.float32)
    assert estimate_tempo(y=noise, sample_rate=SR)[1] < 0.2


def test_tempo_is_rate_independent() -> None:
    at_44k = estimate_tempo(y=click_track(126.0, 10.0)[0], sample_rate=SR)[0]
    at_96k = estimate_tempo(y=click_track(126.0, 10.0, rate=96000)[0], sample_rate=96000)[0]
    assert abs(at_44k - 126.0) < 0.13 and abs(at_96k - 126.0) < 0.13


@pytest.mark.parametrize(("name", "bpm"), [
    ("Bass_Loop_128bpm_Am.wav", 128.0), ("Drums 140 BPM.wav", 140.0), ("Top-174-bpm.wav", 174.0),
    ("Loops 124 BPM/Bass 01.wav", 124.0), ("Groove_BPM_92.wav", 92.0), ("Pad_120_Cm.wav", 120.0),
    ("Kit_127.5bpm.wav", 127.5), ("Kick_01.wav", None), ("TB303_Line.wav", None),
    ("808_Kick.wav", None), ("Snare 24bit 44100.wav", None), ("Vol_2/Loop.wav", None),
])
def test_bpm_from_name(name: str, bpm: float | None) -> None:
    assert bpm_from_name(name) == bpm


def test_bare_number_needs_the_length_to_agree() -> None:
    length_ok = choose_loop_tempo(name="Pad_120.wav", duration=8.0, audio_bpm=90.0,
                                  audio_confidence=0.0, preferred=(100.0, 160.0))
    assert (length_ok.bpm, length_ok.source) == (120.0, "filename")
    numbering = choose_loop_tempo(name="Pad_100.wav", duration=8.0, audio_bpm=90.0,
                                  audio_confidence=0.0, preferred=(100.0, 160.0))
    assert (numbering.bpm, numbering.source) == (120.0, "length")


# --- key --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "key"), [
    ("Bass_Am_128.wav", "A minor"), ("Lead F#min.wav", "F# minor"),
    ("Pad C major.wav", "C major"), ("Fm_Chord.wav", "F minor"), ("Stab_Bb.wav", "A# major"),
    ("Ebm_arp.wav", "D# minor"), ("Chords A minor.wav", "A minor"),
    ("Pad c-moll.wav", "C minor"), ("Synth_fis-moll.wav", "F# minor"),
    ("Pad_h-moll.wav", "B minor"), ("Lead_F sharp minor.wav", "F# minor"),
    ("Am7_chord.wav", "A minor"), ("Kits/Gm/Bass.wav", "G minor"), ("Bass_Dmaj.wav", "D major"),
    ("Amen_Break.wav", None), ("Kick_A.wav", None), ("FM_Bass.wav", None),
    ("E_Piano.wav", None), ("Dub_Chord.wav", None), ("BD_Loop.wav", None),
    ("Fat_Bass.wav", None), ("Emotion.wav", None), ("Bass_Loop_C.wav", None),
])
def test_key_from_name(name: str, key: str | None) -> None:
    assert key_from_name(name) == key


@pytest.mark.parametrize("key", ["A minor", "F# minor", "C major", "D# major", "G minor"])
def test_key_from_audio_chroma(rules, key: str) -> None:
    analysis = analyse_stem(chord_loop(key, 4.0), SR, name="Chords/Loop 01.wav", rules=rules)
    assert (analysis.key, analysis.key_source) == (key, "audio")
    assert analysis.key_confidence > 0.2


def test_estimate_key_from_a_pitch_profile() -> None:
    a_minor_scale = np.zeros(12)
    a_minor_scale[[9, 11, 0, 2, 4, 5, 7]] = 1.0
    a_minor_scale[[9, 4]] += 1.0  # tonic and fifth emphasised
    assert estimate_key(chroma=a_minor_scale)[0] == "A minor"
    flat_key, confidence = estimate_key(chroma=np.ones(12) + 1e-3 * np.arange(12))
    assert confidence < 0.05
    with pytest.raises(ValueError):
        estimate_key(chroma=np.ones(7))


# --- levels, errors, folding ------------------------------------------------------------

def test_levels_of_a_sine() -> None:
    tone = sine(997.0, 2.0, amplitude=0.1)
    levels = measure_levels(audio=tone, sample_rate=SR)
    assert levels["peak_db"] == pytest.approx(-20.0, abs=0.01)
    assert levels["rms_db"] == pytest.approx(-23.01, abs=0.01)
    assert levels["crest_db"] == pytest.approx(3.01, abs=0.02)
    assert levels["lufs"] == pytest.approx(-23.0, abs=0.3)  # BS.1770: 997 Hz reads as-is
    assert measure_levels(audio=tone[:, : int(0.3 * SR)], sample_rate=SR)["lufs"] is None


@pytest.mark.parametrize(("audio", "reason"), [
    (np.zeros((2, SR), np.float32), "silent"),
    (np.full((1, SR), 1e-5, np.float32), "silent"),
    (np.array([[0.1, np.nan, 0.2] * 1000], np.float32), "nan-or-inf"),
    (np.array([[0.1, np.inf, 0.2] * 1000], np.float32), "nan-or-inf"),
    (np.zeros((1, 0), np.float32), "empty"),
])
def test_unanalysable_audio(rules, audio: np.ndarray, reason: str) -> None:
    with pytest.raises(AnalysisError, match=f"^{reason}"):
        analyse_stem(audio, SR, name="Kick.wav", rules=rules)


def test_uncategorised_without_classifier(rules) -> None:
    with pytest.raises(AnalysisError, match="^uncategorised"):
        analyse_stem(sine(220.0, 1.0), SR, name="untitled 7.wav", rules=rules)


def test_descriptors_do_not_depend_on_rate_or_channels(rules) -> None:
    stereo = chord_loop("A minor", 2.0)
    six = np.concatenate([stereo, stereo, stereo])  # L R L R L R
    from_44k = analyse_stem(stereo, SR, name="Pad.wav", rules=rules)
    from_96k = analyse_stem(chord_loop("A minor", 2.0, rate=96000), 96000, name="Pad.wav",
                            rules=rules)
    from_six = analyse_stem(six, SR, name="Pad.wav", rules=rules)
    assert from_six.channels == 6 and from_96k.sample_rate == 96000
    for other in (from_96k, from_six):
        assert other.descriptors["centroid_hz"] == pytest.approx(
            from_44k.descriptors["centroid_hz"], rel=0.02)
        np.testing.assert_allclose(other.features, from_44k.features, rtol=0.05, atol=0.05)


# --- kind and tempo through analyse_stem -------------------------------------------------

def test_loop_bpm_from_filename(rules) -> None:
    analysis = analyse_stem(click_track(124.0, 7.741935), SR, name="Perc Loop 124bpm.wav",
                            rules=rules)
    assert (analysis.kind, analysis.bpm, analysis.bpm_source) == ("loop", 124.0, "filename")


def test_loop_bpm_from_length(rules) -> None:
    # 4 bars at 128 BPM = 7.5 s; the audio says 128 too, the length makes it exact.
    analysis = analyse_stem(click_track(128.0, 7.5, offbeat_hats=True), SR,
                            name="Perc/untitled.wav", rules=rules)
    assert analysis.kind == "loop" and analysis.bpm_source == "length"
    assert analysis.bpm == pytest.approx(128.0, abs=0.01)


def test_sustained_pad_takes_its_tempo_from_its_length(rules) -> None:
    # No onsets to hear; 8 s is 4 bars at 120 (or 2 at 60, 8 at 240: out of range).
    analysis = analyse_stem(chord_loop("C major", 8.0), SR, name="Pad 3.wav", rules=rules)
    assert (analysis.kind, analysis.bpm, analysis.bpm_source) == ("loop", 120.0, "length")


def test_loop_bpm_from_audio(rules) -> None:
    # 9.1 s is no whole number of bars near 132 BPM: only the audio can tell.
    analysis = analyse_stem(click_track(132.0, 9.1, offbeat_hats=True), SR,
                            name="Perc Loop.wav", rules=rules)
    assert analysis.bpm_source == "audio"
    assert analysis.bpm == pytest.approx(132.0, abs=0.5)


def test_oneshots_have_no_tempo(rules) -> None:
    kick = sine(55.0, 0.6, amplitude=0.9, decay=0.08)
    analysis = analyse_stem(kick, SR, name="Kick 01.wav", rules=rules)
    assert (analysis.kind, analysis.bpm, analysis.bpm_source) == ("oneshot", None, "none")
    assert (analysis.key, analysis.key_source) == (None, "none")  # drums store no key
    assert analysis.peak_db == pytest.approx(20 * np.log10(np.max(np.abs(kick))), abs=1e-3)
    assert analysis.lufs is not None


def test_kind_from_name_tokens(rules) -> None:
    hit = analyse_stem(chord_loop("A minor", 4.0), SR, name="Stab One Shot.wav", rules=rules)
    assert hit.kind == "oneshot" and hit.bpm is None
    looped = analyse_stem(sine(110.0, 0.5, decay=0.1), SR, name="Bass Loop.wav", rules=rules)
    assert looped.kind == "loop"


# --- tags ---------------------------------------------------------------------------------

def test_tag_directions(rules) -> None:
    hat = analyse_stem(noise_hat(), SR, name="Hat 1.wav", rules=rules)
    assert "bright" in hat.tags and "dark" not in hat.tags
    low = analyse_stem(sine(45.0, 2.0), SR, name="Bass.wav", rules=rules)
    assert "dark" in low.tags and "bright" not in low.tags
    t = np.arange(2 * SR) / SR
    clean = analyse_stem((0.5 * saw(110.0, t))[None].astype(np.float32), SR, name="Lead.wav",
                         rules=rules)
    clipped_saw = np.clip(4.0 * saw(110.0, t), -0.9, 0.9)[None].astype(np.float32)
    clipped = analyse_stem(clipped_saw, SR, name="Lead.wav", rules=rules)
    assert "distorted" in clipped.tags and "distorted" not in clean.tags


def test_tags_from_name_tokens(rules) -> None:
    analysis = analyse_stem(sine(220.0, 1.0), SR, name="Dark Stuff/Acid_Lead_Wide.wav",
                            rules=rules)
    assert {"dark", "acid", "wide"} <= set(analysis.tags)


# --- a synthesised kit and real samples ---------------------------------------------------

def test_descriptive_synth_kit(rules, synth_kit) -> None:
    for sample in synth_kit:
        analysis = analyse_stem(sample.audio, sample.sample_rate, name=sample.name, rules=rules)
        assert (analysis.category, analysis.kind, analysis.category_source) == (
            sample.category, sample.kind, "filename"), sample.name
        assert analysis.bpm == sample.bpm and analysis.key == sample.key, sample.name
        assert analysis.features.dtype == np.float32 and np.all(np.isfinite(analysis.features))


def test_anonymous_synth_kit_tempo_and_kind(rules, anonymous_kit) -> None:
    classifier = CategoryClassifier()
    classifier.fit(np.stack([analyse_stem(s.audio, s.sample_rate, name=f"x/{s.category}.wav",
                                          rules=rules).features for s in anonymous_kit]),
                   [s.category for s in anonymous_kit])
    for sample in anonymous_kit:
        analysis = analyse_stem(sample.audio, sample.sample_rate, name=sample.name,
                                rules=rules, classifier=classifier)
        assert analysis.kind == sample.kind, sample.name
        if sample.kind == "loop":
            assert analysis.bpm_source in ("length", "audio")
            assert abs(analysis.bpm - sample.bpm) <= 1.0, sample.name


@pytest.mark.lmms
def test_lmms_drum_oneshots_and_beat_loops(rules, lmms_samples) -> None:
    from daemon.ingest.probe import decode_audio

    root = lmms_samples
    names = sorted((root / "drums").glob("*.ogg")) + sorted((root / "beats").glob("*.ogg"))
    right = 0
    for path in names:
        decoded = decode_audio(path)
        rel = path.relative_to(root).as_posix()
        analysis = analyse_stem(decoded.audio, decoded.sample_rate, name=rel, rules=rules)
        right += analysis.kind == ("loop" if rel.startswith("beats/") else "oneshot")
        if analysis.kind == "loop":
            assert 70.0 <= analysis.bpm <= 200.0
    # Measured: 85 of 85 with names (bench/accuracy.py "kind with names").
    assert right / len(names) >= 0.95
