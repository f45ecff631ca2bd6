"""FILE.mid: tempo, markers and one General MIDI drum track per patterned one-shot lane, in
time with the WAV (checked by ear's proxy: FluidSynth renders the kick track and its onsets
are compared with the kick lane's)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
from render_helpers import kit_records, techno_plan
from track_helpers import render_track

from daemon.compose.plan import Plan, Section, StemQuery
from daemon.errors import RuleError
from daemon.render.drum_notes import parse_drum_notes
from daemon.render.outputs import write_outputs
from daemon.render.track import RenderedTrack

SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
PLAN = techno_plan(bpm=132.0)
ONSET_TOLERANCE = 0.005  # seconds: the contract
SPREAD_DB = 1.5  # the mix varies each hit's gain by at most this


@pytest.fixture(scope="module")
def library(tmp_path_factory, synth_kit):
    return kit_records(synth_kit, tmp_path_factory.mktemp("library") / "TE Test Kit")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, library) -> tuple[RenderedTrack, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("midi")
    track = render_track(PLAN, library, cache_dir=folder / "cache")
    result = write_outputs(track, folder / "track.wav", exports=("midi", "lanes"))
    return track, result.exports


@pytest.fixture(scope="session")
def fluidsynth() -> str:
    """The fluidsynth program with the FluidR3 GM soundfont: required on CI."""
    program = shutil.which("fluidsynth")
    if program is None or not SOUNDFONT.is_file():
        if os.environ.get("CI"):
            pytest.fail("fluidsynth and fluid-soundfont-gm are required on CI")
        pytest.skip("Debian packages fluidsynth and fluid-soundfont-gm are not installed")
    return program


def note_ons(track: mido.MidiTrack) -> list[tuple[int, int, int, int]]:
    """(absolute tick, channel, note, velocity) of every note-on."""
    now, result = 0, []
    for message in track:
        now += message.time
        if message.type == "note_on" and message.velocity:
            result.append((now, message.channel, message.note, message.velocity))
    return result


def onsets(audio: np.ndarray, rate: int, around: np.ndarray, *, before: float = 0.010,
           after: float = 0.040) -> np.ndarray:
    """The onset (s) near each time in `around`: the first sample reaching a fifth of the
    peak from `before` seconds before to `after` seconds after it."""
    level = np.abs(audio).max(axis=1) if audio.ndim == 2 else np.abs(audio)
    found = []
    for time in around:
        start = max(0, round((time - before) * rate))
        window = level[start:round((time + after) * rate)]
        found.append((start + int(np.argmax(window >= 0.2 * window.max()))) / rate)
    return np.asarray(found)


def test_type_1_file_with_tempo_markers_and_a_drum_track_per_lane(rendered):
    track, exports = rendered
    midi = mido.MidiFile(exports["midi"])
    assert midi.type == 1
    conductor = midi.tracks[0]
    tempo = next(m for m in conductor if m.type == "set_tempo")
    assert abs(tempo.tempo - 60e6 / PLAN.bpm) <= 0.5  # whole microseconds per beat
    signature = next(m for m in conductor if m.type == "time_signature")
    assert (signature.numerator, signature.denominator) == (4, 4)
    now, markers = 0, []
    for message in conductor:
        now += message.time
        if message.type == "marker":
            markers.append((message.text, now))
    assert markers == [(s.section, start * 4 * midi.ticks_per_beat)
                       for start, s in zip(PLAN.section_starts(), PLAN.structure)]
    lanes = {t.name: note_ons(t) for t in midi.tracks[1:]}
    assert set(lanes) == {"kick", "clap", "hihat", "hihat2"}  # no loops, no riser, no pad
    assert {note for hits in lanes.values() for _, _, note, _ in hits} == {36, 39, 42, 46}
    assert {channel for hits in lanes.values() for _, channel, _, _ in hits} == {9}
    assert {note for _, _, note, _ in lanes["kick"]} == {36}


def test_velocities_come_from_the_pattern_steps(rendered):
    """Each hat hit's velocity is its step's pattern velocity (accent, normal, ghost) times
    the mix's small per-hit variation."""
    track, exports = rendered
    midi = mido.MidiFile(exports["midi"])
    hats = note_ons(next(t for t in midi.tracks if t.name == "hihat"))
    steps = track.pattern.steps["hihat"]
    ticks_per_step = midi.ticks_per_beat // 4
    levels = set()
    for tick, _, _, velocity in hats:
        assert tick % ticks_per_step == 0  # the techno pattern does not swing
        step = steps[(tick // ticks_per_step) % len(steps)]
        low = step * 10 ** (-SPREAD_DB / 20) * 127 - 1
        high = min(1.0, step * 10 ** (SPREAD_DB / 20)) * 127 + 1
        assert low <= velocity <= high, (tick, step, velocity)
        levels.add(step)
    assert len(levels) >= 2  # accents and ghosts both appear


def test_fluidsynth_kicks_land_within_5_ms_of_the_wav_kicks(rendered, fluidsynth, tmp_path):
    track, exports = rendered
    midi = mido.MidiFile(exports["midi"])
    kick_only = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    kick_only.tracks += [midi.tracks[0], next(t for t in midi.tracks if t.name == "kick")]
    kick_only.save(tmp_path / "kick.mid")
    subprocess.run([fluidsynth, "-ni", "-F", str(tmp_path / "kick.wav"), "-r", "44100",
                    str(SOUNDFONT), str(tmp_path / "kick.mid")], check=True,
                   capture_output=True, timeout=120)
    synth, synth_rate = sf.read(tmp_path / "kick.wav", dtype="float32")
    lane_file = next(exports["lanes"].glob("[0-9][0-9]-kick.wav"))
    lane, lane_rate = sf.read(lane_file, dtype="float32")
    midi_times = np.array([time for time in _note_on_seconds(kick_only)])
    hit_times = track.kicks / track.sample_rate  # where the mix placed them
    assert midi_times.size == hit_times.size > 30
    # FluidSynth starts its first note after a latency of its own: compare relative to it.
    latency = onsets(synth, synth_rate, midi_times[:1], before=0.0, after=0.1)[0] - \
        midi_times[0]
    heard = onsets(synth, synth_rate, midi_times + latency)
    played = onsets(lane, lane_rate, hit_times)
    drift = (heard - heard[0]) - (played - played[0])
    assert np.abs(drift).max() <= ONSET_TOLERANCE, drift


def test_a_track_without_one_shot_lanes_holds_only_tempo_and_markers(library, tmp_path):
    q = StemQuery
    loops_only = Plan(prompt="loops", genre="techno", bpm=128.0, key="A minor", seed=2,
                      structure=(Section("A", 4, 0.5, (q("bass"), q("pad"))),
                                 Section("B", 4, 1.0, (q("bass"), q("drum_loop")))))
    track = render_track(loops_only, library, cache_dir=tmp_path / "cache")
    assert all(region.mode == "loop" for region in track.regions)
    result = write_outputs(track, tmp_path / "loops.wav", exports=("midi",))
    midi = mido.MidiFile(result.exports["midi"])
    assert len(midi.tracks) == 1
    assert {m.type for m in midi.tracks[0]} == {"track_name", "set_tempo", "time_signature",
                                                "marker", "end_of_track"}
    assert sum(m.time for m in midi.tracks[0]) == 8 * 4 * midi.ticks_per_beat  # 8 bars


def test_drum_note_rules_are_validated():
    assert parse_drum_notes({"drum_notes": {"kick": 36}}) == {"kick": 36}
    with pytest.raises(RuleError) as error:
        parse_drum_notes({"drum_notes": {"kick": 200, "cowbell": 56, "snare": "38"},
                          "extra": {}})
    message = str(error.value)
    assert "midi.toml: drum_notes.kick: must be between 27 and 87 (got 200)" in message
    assert "drum_notes.cowbell: unknown key" in message
    assert "drum_notes.snare: must be an integer" in message
    assert "midi.toml: extra: unknown key" in message


def _note_on_seconds(midi: mido.MidiFile):
    """Seconds of every note-on, as a player reads the file (tempo map applied)."""
    now = 0.0
    for message in midi:
        now += message.time
        if message.type == "note_on" and message.velocity:
            yield now
