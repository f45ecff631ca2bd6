"""Loop or one-shot weighed per kit: a loop of held chords its own audio takes for a
one-shot is a loop of whole bars at its kit's tempo; a one-shot stays one; the kit pass is
a pure function of what the analysis said."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from consensus_helpers import ROOT, analyse_kit, kit_rules, settle

from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.kit_kind import EXACT_S, kit_tempo, loop_by_length
from daemon.ingest.kitpass import kit_updates
from daemon.ingest.rules import load_analysis_rules
from daemon.ingest.tempo import TempoChoice
from daemon.synth import KitSample
from daemon.synth.traps import trap_kit

RATE = 44100
BPM, BARS = 76.0, 2
BAR_S = 240.0 / BPM


def plucked_chords(seconds: float, starts: list[float]) -> np.ndarray:
    """A G major triad plucked at each of `starts` (s), decaying in a third of a second:
    no steady pulse, and silent long before the file ends."""
    t = np.arange(int(round(seconds * RATE))) / RATE
    y = np.zeros_like(t)
    for start in starts:
        ring = t[t >= start] - start
        y[t >= start] += np.exp(-ring / 0.35) * sum(
            np.sin(2 * np.pi * f * k * ring) / k for f in (196.0, 246.9, 293.7) for k in (1, 2, 3))
    y = (0.3 * y / np.abs(y).max()).astype(np.float32)
    return np.stack([y, y])


@pytest.fixture(scope="module")
def settled_kit(trained_classifier):
    """A 2-bar kit at 76 BPM with a 2-bar loop of plucked chords (one a bar) and a plucked
    chord one-shot of 2.9 s, analysed stem by stem; and the kit pass's records."""
    samples = trap_kit(bpm=BPM, key="G major", seed=5, bars=BARS)
    samples += [KitSample(name="Chords 7.wav", audio=plucked_chords(BARS * BAR_S, [0.0, BAR_S]),
                          sample_rate=RATE, category="chord", kind="loop", bpm=BPM,
                          key="G major", tags=()),
                KitSample(name="Chords 8.wav", audio=plucked_chords(2.9, [0.0]),
                          sample_rate=RATE, category="chord", kind="oneshot", bpm=None,
                          key="G major", tags=())]
    records = analyse_kit(samples, load_analysis_rules(ROOT / "rules"),
                          CategoryClassifier.load(trained_classifier))
    return {r.rel_path: r for r in records}, {r.rel_path: r for r in settle(records, kit_rules())}


def test_a_loop_of_held_chords_is_a_loop_of_its_kit(settled_kit):
    analysed, settled = settled_kit
    # The trap: on its own the loop decays between its chords and has no pulse.
    assert (analysed["Chords 7.wav"].kind, analysed["Chords 7.wav"].kind_source) == (
        "oneshot", "audio")
    loop = settled["Chords 7.wav"]
    assert (loop.kind, loop.kind_source, loop.bpm_source) == ("loop", "kit", "kit")
    assert loop.bpm == pytest.approx(BPM, abs=0.01)
    assert "2 bars at its kit's 76.0 BPM" in loop.bpm_reason
    assert 0 < loop.bpm_confidence <= 0.6


def test_a_one_shot_off_the_bar_grid_and_a_drum_hit_stay_one_shots(settled_kit):
    _, settled = settled_kit
    assert (settled["Chords 8.wav"].kind, settled["Chords 8.wav"].bpm) == ("oneshot", None)
    hits = [r for r in settled.values() if r.category in ("kick", "snare", "hihat", "clap")]
    assert hits and all(r.kind == "oneshot" and r.bpm is None for r in hits)


def test_the_kit_pass_weighs_a_loop_it_made_as_the_one_shot_the_analysis_said(settled_kit):
    _, settled = settled_kit
    records = list(settled.values())
    assert kit_updates(records, kit=records[0].kit, rules=kit_rules()) == {}  # settled
    # The user says every loop of the kit runs at 100 BPM: the chords no longer last whole
    # bars, so they are a one-shot again, with no tempo.
    moved = [replace(r, bpm=100.0, bpm_source="user") if r.kind_source != "kit" and
             r.kind == "loop" else r for r in records]
    chords = next(r for r in moved if r.rel_path == "Chords 7.wav")
    update = kit_updates(moved, kit=records[0].kit, rules=kit_rules())[chords.id]
    assert (update["kind"], update["kind_source"], update["bpm"], update["bpm_source"]) == (
        "oneshot", "audio", None, "none")


def test_only_an_exact_whole_bar_length_by_audio_makes_a_loop():
    kit = TempoChoice(120.0, 0.95, "kit")
    made = loop_by_length(4.0, "audio", kit)
    assert made is not None and (made.bpm, made.confidence, made.source) == (120.0, 0.6, "kit")
    assert loop_by_length(4.0 + EXACT_S / 2, "audio", kit).bpm == pytest.approx(119.85, abs=0.01)
    assert loop_by_length(4.0 + 3 * EXACT_S, "audio", kit) is None  # a decay trimmed near 2 bars
    assert loop_by_length(6.0, "audio", kit) is None  # 3 bars: not a usual loop length
    assert loop_by_length(4.0, "category", kit) is None  # its category plays one-shots
    assert loop_by_length(4.0, "filename", kit) is None  # its name says one-shot
    assert loop_by_length(4.0, "audio", TempoChoice(None, 0.0, "none")) is None


def test_the_kit_tempo_is_the_largest_group_of_loops():
    choices = [TempoChoice(90.0, 0.9, "kit"), TempoChoice(120.0, 0.6, "kit"),
               TempoChoice(120.0, 0.7, "kit"), TempoChoice(None, 0.0, "none")]
    assert kit_tempo(choices) == TempoChoice(120.0, 0.7, "kit")
    assert kit_tempo([TempoChoice(None, 0.0, "none")]) is None
