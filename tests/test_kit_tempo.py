"""Loop tempo weighed per kit: the octave, 5:4 and 3:2 traps of synthesised kits with
anonymous names, the hints of a kit's name, and the evidence rules on their own."""

from __future__ import annotations

import numpy as np
import pytest
from consensus_helpers import ROOT, analyse_kit, kit_rules, settle

from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.features import ANALYSIS_RATE, prepare
from daemon.ingest.kit_tempo import KitTempoHints, LoopEvidence, mark_single, resolve_tempi
from daemon.ingest.kitpass import kit_hints
from daemon.ingest.rules import load_analysis_rules
from daemon.ingest.tempo import measure_pulse
from daemon.synth.traps import trap_kit


@pytest.fixture(scope="module")
def rules():
    return load_analysis_rules(ROOT / "rules")


@pytest.fixture(scope="module")
def classifier(trained_classifier):
    return CategoryClassifier.load(trained_classifier)


def loops_of(records):
    return [record for record in records if record.kind == "loop"]


def pulse_of(sample) -> float:
    return measure_pulse(y=prepare(audio=sample.audio, sample_rate=sample.sample_rate).mono,
                         sample_rate=ANALYSIS_RATE).bpm


# --- traps built with the synthesiser, names saying nothing ------------------------------

def test_octave_trap_a_slow_kit_is_not_read_at_double_tempo(rules, classifier):
    samples = trap_kit(bpm=85.0, key="D minor", seed=41, bars=2)
    # The trap: 2 bars at 85 are 4 at 170, and hats in eighths pulse at 170.
    assert any(abs(pulse_of(s) - 170.0) < 1.0 for s in samples if s.kind == "loop")
    settled = settle(analyse_kit(samples, rules, classifier), kit_rules())
    truth = {s.name: s for s in samples}
    for record in loops_of(settled):
        assert record.bpm == pytest.approx(truth[record.rel_path].bpm, abs=1.0), record.rel_path
        assert record.bpm_source == "kit"


@pytest.mark.parametrize(("bpm", "trap", "misread"), [(140.0, "5:4", 175.0),
                                                      (120.0, "3:2", 180.0)])
def test_cross_rhythm_trap_is_outvoted_by_the_kit_and_the_bar_count(rules, classifier, bpm,
                                                                     trap, misread):
    samples = trap_kit(bpm=bpm, key="A minor", seed=42, traps=(trap,))
    trap_sample = samples[-1]
    assert pulse_of(trap_sample) == pytest.approx(misread, rel=0.01)  # the trap reads wrong
    settled = settle(analyse_kit(samples, rules, classifier), kit_rules())
    for record in loops_of(settled):
        assert record.bpm == pytest.approx(bpm, abs=1.0), record.rel_path
    [trapped] = [r for r in settled if r.rel_path == trap_sample.name]
    assert "misread" in trapped.bpm_reason


def test_a_genre_word_in_the_kit_name_settles_an_octave_the_audio_cannot(rules):
    # Loops with no kick band: their pulse reads 180 and cannot say 90 or 180.
    loops = [LoopEvidence(duration=4 * 240 / 90.0, pulse_bpm=180.0, pulse_confidence=0.3)
             for _ in range(4)]
    assert {c.bpm for c in resolve_tempi(loops)} == {180.0}
    lofi = kit_hints("Dusty Lofi Tape", kit_rules({"lofi": (60.0, 95.0)}))
    assert lofi.genre_range == (60.0, 95.0)
    assert {c.bpm for c in resolve_tempi(loops, lofi)} == {90.0}
    named = kit_hints("Night Drive 90 BPM", kit_rules())
    assert (named.named_bpm, named.genre_range) == (90.0, None)
    assert {c.bpm for c in resolve_tempi(loops, named)} == {90.0}


def test_a_drum_loop_that_settled_the_octave_outweighs_the_preferred_range():
    # Recorded at 78 BPM, 2 bars: the tonal loops' eighths read 156, inside every category's
    # preferred 100-160; the groove's backbeat settled 78. The range is a tie-break only.
    two_bars = 2 * 240 / 78.0
    tonal = [LoopEvidence(duration=two_bars, pulse_bpm=156.0, pulse_confidence=confidence)
             for confidence in (0.23, 0.17, 0.30)]
    groove = LoopEvidence(duration=two_bars, pulse_bpm=78.0, pulse_confidence=0.18,
                          pulse_kicks=True)
    assert {c.bpm for c in resolve_tempi(tonal)} == {156.0}
    assert {c.bpm for c in resolve_tempi([*tonal, groove])} == {78.0}


# --- the evidence rules -----------------------------------------------------------------

def test_the_length_decides_between_a_misread_and_its_whole_bars():
    four_bars = 4 * 240 / 140.0
    kit = [LoopEvidence(duration=four_bars, pulse_bpm=140.0, pulse_confidence=0.2)
           for _ in range(3)] + [LoopEvidence(duration=four_bars, pulse_bpm=175.0,
                                              pulse_confidence=0.4)]
    choices = resolve_tempi(kit)
    assert [c.bpm for c in choices] == [140.0] * 4
    assert choices[0].confidence > 0.9 and choices[0].reason == ""


def test_a_kit_that_mixes_two_tempi_keeps_both_and_says_so():
    kit = ([LoopEvidence(duration=8.0, pulse_bpm=120.0, pulse_confidence=0.2)] * 3
           + [LoopEvidence(duration=4 * 240 / 140.0, pulse_bpm=140.0, pulse_confidence=0.2)] * 3)
    choices = resolve_tempi(kit)
    assert [c.bpm for c in choices] == [120.0] * 3 + [140.0] * 3
    assert all("kit mixes tempi" in c.reason and c.confidence < 0.8 for c in choices)


def test_a_lone_loop_has_no_consensus():
    [choice] = resolve_tempi([LoopEvidence(duration=7.5, pulse_bpm=128.0,
                                           pulse_confidence=0.3)])
    assert (choice.bpm, choice.source) == (128.0, "length")
    alone = mark_single(choice)
    assert alone.confidence <= 0.5 and "no kit consensus" in alone.reason


def test_a_loop_off_the_bar_grid_takes_the_kit_tempo_with_less_confidence():
    kit = [LoopEvidence(duration=7.5, pulse_bpm=128.0, pulse_confidence=0.2)] * 3 + [
        LoopEvidence(duration=7.5 + 0.37, pulse_bpm=128.1, pulse_confidence=0.2)]
    choices = resolve_tempi(kit)
    assert [c.bpm for c in choices] == [128.0] * 4
    assert "no whole bar count" in choices[3].reason
    assert choices[3].confidence < choices[0].confidence


def test_the_users_tempo_wins_and_leads_the_kit():
    # 4 bars at 85 or 8 at 170; the pulse says 170, the user says 85.
    loops = [LoopEvidence(duration=4 * 240 / 85.0, pulse_bpm=170.0, pulse_confidence=0.3)] * 3
    corrected = [LoopEvidence(duration=4 * 240 / 85.0, pulse_bpm=170.0, pulse_confidence=0.3,
                              user_bpm=85.0)]
    choices = resolve_tempi(loops + corrected)
    assert [c.bpm for c in choices] == [85.0] * 4
    assert choices[3].source == "user"


def test_noise_without_pulse_or_bar_grid_is_unsure_and_says_why():
    [choice] = resolve_tempi([LoopEvidence(duration=7.77, pulse_bpm=91.0,
                                           pulse_confidence=0.04)])
    assert choice.confidence <= 0.5 and "no clear pulse" in choice.reason
    rng = np.random.default_rng(5)
    noise = rng.standard_normal(int(6.1 * ANALYSIS_RATE)).astype(np.float32)
    pulse = measure_pulse(y=noise, sample_rate=ANALYSIS_RATE)
    assert pulse.confidence < 0.1 and not pulse.kicks


def test_hints_need_no_genre_rules_to_read_a_kit_name():
    assert kit_hints("Export 3", kit_rules()) == KitTempoHints()
