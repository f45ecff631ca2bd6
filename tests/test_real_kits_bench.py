"""The real-recording kit bench's ground truth: what it says a kit holds is what it wrote."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_system_path

from daemon.keys import TONICS
from daemon.synth.music import SCALE_STEPS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import real_kits  # noqa: E402  (bench/: the kits it renders)

_TONAL = ("bass", "chord", "arp", "lead", "pad")


@pytest.mark.parametrize("spec", real_kits.kit_specs(6, seed=3), ids=lambda spec: str(spec.index))
def test_every_tonal_note_is_in_the_kit_key_and_every_loop_fits_its_bars(spec) -> None:
    tonic_name, mode = spec.key.split()
    scale = {(TONICS.index(tonic_name) + step) % 12 for step in SCALE_STEPS[mode]}
    stems = real_kits.kit_stems(spec)
    assert len({stem.name for stem in stems}) == len(stems)
    assert all(stem.name.startswith("Audio 1-") for stem in stems)  # no hint in a name
    for stem in stems:
        if stem.category in _TONAL:
            assert {note.pitch % 12 for note in stem.notes} <= scale, stem
            assert stem.channel != real_kits.DRUM_CHANNEL
        else:
            assert stem.channel == real_kits.DRUM_CHANNEL
        if stem.kind == "loop":
            assert stem.beats == 4 * spec.bars
            assert all(0 <= note.start < stem.beats for note in stem.notes)
    loops = [stem for stem in stems if stem.kind == "loop"]
    assert sorted(stem.category for stem in loops) == sorted(("drum_loop", "drum_loop", *_TONAL))


def test_each_file_holds_only_its_own_slot() -> None:
    """Slot k of a stand-in render sounds the value k + 1 while its notes play and its
    release rings, then falls silent: no file may hold another slot's value."""
    spec = real_kits.kit_specs(1, seed=3)[0]
    stems = real_kits.kit_stems(spec)
    beat_s = 60.0 / spec.bpm
    starts = real_kits.slot_starts(stems, beat_s)
    release = round(0.5 * real_kits.RATE)  # shorter than the silence between slots
    audio = np.zeros((2, round((starts[-1] + stems[-1].beats * beat_s) * real_kits.RATE)))
    for index, (stem, start) in enumerate(zip(stems, starts)):
        first = round(start * real_kits.RATE)
        audio[:, first:first + round(stem.beats * beat_s * real_kits.RATE) + release] = (
            index + 1)
    files = real_kits.cut_stems(audio, stems, starts, beat_s)
    for index, stem in enumerate(stems):
        assert set(np.unique(files[stem.name])) <= {float(index + 1), 2.0 * (index + 1)}, (
            stem.name)  # its own value, or its own release folded onto its start


def test_loops_are_cut_to_exactly_their_bars_and_one_shots_are_heard(monkeypatch) -> None:
    """Rendered with FluidR3 (on CI for the other FluidSynth tests) in place of the bench's
    banks: the cutting does not depend on the bank."""
    font = require_system_path("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm")
    require_system_path("/usr/bin/fluidsynth", "fluidsynth")
    monkeypatch.setitem(real_kits.BANKS, "csound", (font, None))
    spec = real_kits.kit_specs(1, seed=3)[0]
    assert spec.bank == "csound"
    stems = real_kits.kit_stems(spec)
    files = real_kits.render_kit(spec, stems)
    loop_samples = round(4 * spec.bars * 60.0 / spec.bpm * real_kits.RATE)
    for stem in stems:
        audio = files[stem.name]
        assert audio.shape[0] == 2 and abs(audio).max() > 1e-3, stem.name  # something played
        if stem.kind == "loop":
            assert audio.shape[1] == loop_samples, stem.name
        else:
            assert audio.shape[1] < loop_samples + real_kits._SLOT_GAP_S * real_kits.RATE
