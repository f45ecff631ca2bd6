"""Notes and phrases rendered from SF2 soundfonts with FluidSynth, for the training corpus.

A `Phrase` is a labelled list of notes on one program. `render_phrases` writes all phrases of
one program into a single MIDI file (each phrase in its own time slot, silence between them),
renders it once with ``fluidsynth -F`` (dry: reverb and chorus off) and cuts the result back
into one clip per phrase. One FluidSynth run per program keeps a 150 MB soundfont from being
loaded hundreds of times.

`melodic_phrases` and `drum_phrases` write the musical content: what a bass line, a lead, an
arpeggio, a chord stab, a pad, an atmosphere, a keys one-shot, a vocal line, an FX sweep and
a drum loop look like as notes. Everything is seeded, so a rebuild gives the same corpus.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

RENDER_RATE = 44100
_TICKS_PER_SECOND = 960  # 480 ticks per beat at 120 BPM
_GAP_S = 1.5  # silence between phrases: releases and tails die out in it
_TRIM_DB = -60.0  # a clip ends where its level falls this far below its peak for good
DRUM_CHANNEL = 9
_BEND_RANGE = 24  # semitones of pitch-bend range set for sweeps (RPN 0)


@dataclass(frozen=True)
class Note:
    start_s: float
    length_s: float
    pitch: int
    velocity: int = 100


@dataclass(frozen=True)
class Phrase:
    """Notes to render on one program; `bend` sweeps the pitch (semitones over the phrase)."""

    file_id: str
    label: str
    notes: tuple[Note, ...]
    tail_s: float = 1.0  # release time kept after the last note ends
    bend: float = 0.0

    @property
    def length_s(self) -> float:
        return max(n.start_s + n.length_s for n in self.notes) + self.tail_s


def render_phrases(font: Path, phrases: list[Phrase], *, program: int, bank: int = 0,
                   channel: int = 0) -> list[tuple[Phrase, np.ndarray]]:
    """Render `phrases` with `program` of `bank` in `font`; ``(phrase, (2, n) float32)`` pairs.

    Clips that come out silent (a program or note the font lacks) are left out.
    """
    starts = np.cumsum([0.0] + [phrase.length_s + _GAP_S for phrase in phrases[:-1]])
    audio = play_midi(font, _midi_file(phrases, starts, program=program, bank=bank,
                                       channel=channel), gain=0.5)
    clips = []
    for phrase, start in zip(phrases, starts):
        first = round(start * RENDER_RATE)
        clip = trimmed(audio[first:first + round(phrase.length_s * RENDER_RATE)].T)
        if clip is not None:
            clips.append((phrase, clip))
    return clips


def play_midi(font: Path, midi: mido.MidiFile, *, gain: float) -> np.ndarray:
    """`midi` played by FluidSynth from `font`, dry (reverb and chorus off), at `gain`:
    ``(n, 2)`` float32 at `RENDER_RATE`."""
    with tempfile.TemporaryDirectory(prefix="traum-gm-") as tmp:
        path, wav = Path(tmp) / "play.mid", Path(tmp) / "play.wav"
        midi.save(path)
        subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", str(gain),
                        "-r", str(RENDER_RATE), "-O", "float", "-T", "wav", "-F", str(wav),
                        str(font), str(path)], check=True, capture_output=True, timeout=600)
        audio, _ = sf.read(wav, dtype="float32", always_2d=True)
    return audio


def _midi_file(phrases: list[Phrase], starts: np.ndarray, *, program: int, bank: int,
               channel: int) -> mido.MidiFile:
    events = []  # (seconds, order, message): note-offs sort before note-ons at one time
    for phrase, start in zip(phrases, starts):
        for note in phrase.notes:
            on = start + note.start_s
            events.append((on, 1, mido.Message("note_on", channel=channel, note=note.pitch,
                                               velocity=note.velocity)))
            events.append((on + note.length_s, 0, mido.Message("note_off", channel=channel,
                                                               note=note.pitch)))
        events.extend(_bend_events(phrase, start, channel))
    return midi_from_events([
        mido.Message("control_change", channel=channel, control=0, value=bank >> 7 & 127),
        mido.Message("control_change", channel=channel, control=32, value=bank & 127),
        mido.Message("program_change", channel=channel, program=program),
        *[mido.Message("control_change", channel=channel, control=control, value=value)
          for control, value in ((101, 0), (100, 0), (6, _BEND_RANGE), (38, 0))],
    ], events)


def midi_from_events(setup: list[mido.Message], events: list[tuple[float, int, mido.Message]]
                     ) -> mido.MidiFile:
    """A one-track MIDI file at 120 BPM (960 ticks a second): the `setup` messages at the
    start, then `events` ``(seconds, order, message)`` in time order, ties by `order`."""
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500_000), *setup])
    now = 0
    for seconds, _, message in sorted(events, key=lambda event: event[:2]):
        tick = round(seconds * _TICKS_PER_SECOND)
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    return midi


def _bend_events(phrase: Phrase, start: float, channel: int) -> list:
    """Pitch-wheel steps every 20 ms from 0 to `phrase.bend` semitones, then a reset."""
    if not phrase.bend:
        return []
    span = phrase.length_s - phrase.tail_s
    times = np.arange(0.0, span, 0.02)
    wheel = np.clip(np.round(8191 * phrase.bend / _BEND_RANGE * times / span), -8192, 8191)
    steps = [(start + t, 2, mido.Message("pitchwheel", channel=channel, pitch=int(value)))
             for t, value in zip(times, wheel)]
    return steps + [(start + phrase.length_s, 2, mido.Message("pitchwheel", channel=channel,
                                                               pitch=0))]


def trimmed(clip: np.ndarray) -> np.ndarray | None:
    """`clip` ``(2, n)`` without the leading and trailing stretches below `_TRIM_DB`."""
    level = np.abs(clip).max(axis=0)
    if level.size == 0 or level.max() < 1e-4:  # -80 dBFS: nothing was played
        return None
    loud = np.flatnonzero(level >= level.max() * 10 ** (_TRIM_DB / 20))
    return np.ascontiguousarray(clip[:, loud[0]:loud[-1] + 1])


# -- musical content ----------------------------------------------------------------------

#: GM programs (0-based) per category, chosen by what the instrument plays in a kit.
PROGRAMS = {
    "bass": (32, 33, 34, 35, 36, 37, 38, 39),
    "lead": (22, 29, 30, 40, 56, 65, 66, 68, 71, 73, 79, 80, 81, 83, 84, 86),
    "arp": (0, 4, 5, 8, 11, 12, 24, 46, 80, 81, 90, 108),
    "chord": (0, 4, 5, 16, 17, 18, 24, 25, 27, 30, 48, 61, 62, 90),
    "pad": (19, 48, 49, 50, 51, 52, 88, 89, 90, 91, 92, 93, 94, 95),
    "atmo": (92, 96, 97, 98, 99, 100, 101, 102, 103, 122),
    "synth": (0, 1, 2, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 24, 25, 45, 46, 105, 107, 108, 112),
    "vocal": (52, 53, 54, 85),
    "fx": (119, 120, 121, 123, 124, 125, 126, 127),
}
SWEEP_PROGRAMS = (80, 81, 62, 95)  # saw/square leads, brass, a sweep pad: risers and drops
#: Minor-scale steps; every phrase picks its own tonic so the corpus covers all keys.
_MINOR = (0, 2, 3, 5, 7, 8, 10)
_PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 0), (0, 6, 5, 4), (0, 2, 5, 4))


def melodic_phrases(category: str, program: int, *, seed: int) -> list[Phrase]:
    """The phrases rendered for `category` on `program` (see `PROGRAMS`)."""
    rng = np.random.default_rng([seed, program, sum(map(ord, category))])
    maker = _MAKERS[category]
    return [Phrase(f"{category}-p{program:03d}-{index}", category, notes, tail, bend)
            for index, (notes, tail, bend) in enumerate(maker(rng))]


def _beat(rng: np.random.Generator) -> float:
    return 60.0 / rng.uniform(90.0, 150.0)


def _scale(tonic: int, degree: int) -> int:
    return tonic + 12 * (degree // 7) + _MINOR[degree % 7]


def _bass(rng):
    for _ in range(3):  # one-shots: single notes, low register
        yield (Note(0.0, rng.uniform(0.4, 1.5), int(rng.integers(28, 50))),), 0.6, 0.0
    for _ in range(3):  # two-bar lines of eighths and sixteenths on scale tones
        beat, tonic = _beat(rng), int(rng.integers(28, 40))
        step = beat / rng.choice([2, 4])
        notes = [Note(i * step, step * rng.uniform(0.5, 0.95),
                      _scale(tonic, int(rng.choice([0, 0, 0, 2, 4, 5, 7]))))
                 for i in range(int(round(8 * beat / step))) if rng.random() < 0.8]
        yield tuple(notes) or (Note(0.0, step, tonic),), 0.3, 0.0


def _lead(rng):
    for _ in range(3):  # monophonic melodies, mixed note values, legato
        beat, tonic, time, degree, notes = _beat(rng), int(rng.integers(60, 72)), 0.0, 7, []
        while time < 8 * beat:
            length = beat * rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0])
            degree = int(np.clip(degree + rng.integers(-2, 3), 0, 14))
            notes.append(Note(time, length * 0.95, _scale(tonic, degree)))
            time += length
        yield tuple(notes), 0.5, 0.0


def _arp(rng):
    for _ in range(3):  # sixteenth arpeggios over a chord per bar, staccato
        beat, tonic = _beat(rng), int(rng.integers(55, 67))
        step = beat / 4
        notes = []
        for bar, root in enumerate(_PROGRESSIONS[int(rng.integers(4))][:2]):
            tones = [_scale(tonic, root + offset) for offset in (0, 2, 4, 7, 9, 11)]
            order = tones + tones[-2:0:-1] if rng.random() < 0.5 else tones
            for i in range(16):
                notes.append(Note((bar * 16 + i) * step, step * rng.uniform(0.3, 0.8),
                                  order[i % len(order)]))
        yield tuple(notes), 0.4, 0.0


def _chords(rng, *, root: int, tonic: int, start: float, length: float, velocity: int = 100):
    voicing = (0, 2, 4) if rng.random() < 0.5 else (0, 2, 4, 6)
    return [Note(start, length, _scale(tonic, root + offset), velocity) for offset in voicing]


def _chord(rng):
    for _ in range(2):  # stabs: short chords on a syncopated grid, two bars
        beat, tonic, notes = _beat(rng), int(rng.integers(52, 64)), []
        for slot in np.flatnonzero(rng.random(16) < 0.35):
            notes += _chords(rng, root=int(rng.choice([0, 3, 4, 5])), tonic=tonic,
                             start=slot * beat / 2, length=beat * rng.uniform(0.2, 0.45))
        if not notes:  # no slot was drawn: one stab on the downbeat
            notes = _chords(rng, root=0, tonic=tonic, start=0.0, length=beat)
        yield tuple(notes), 0.5, 0.0
    for _ in range(2):  # a progression, one chord a bar
        beat, tonic, notes = _beat(rng), int(rng.integers(52, 64)), []
        for bar, root in enumerate(_PROGRESSIONS[int(rng.integers(4))]):
            notes += _chords(rng, root=root, tonic=tonic, start=4 * bar * beat,
                             length=4 * beat * 0.95)
        yield tuple(notes), 0.8, 0.0
    yield tuple(_chords(rng, root=0, tonic=int(rng.integers(52, 64)), start=0.0,
                        length=rng.uniform(0.3, 1.5))), 1.0, 0.0  # a one-shot chord


def _pad(rng):
    for _ in range(3):  # one or two long chords, soft
        tonic, count = int(rng.integers(48, 62)), int(rng.integers(1, 3))
        length, notes = rng.uniform(3.0, 5.0), []
        for index in range(count):
            notes += _chords(rng, root=int(rng.choice([0, 3, 5])), tonic=tonic,
                             start=index * length, length=length, velocity=80)
        yield tuple(notes), 2.0, 0.0


def _atmo(rng):
    for _ in range(3):  # long low notes or a cluster, held for 6-10 s
        root, length = int(rng.integers(36, 60)), rng.uniform(6.0, 10.0)
        pitches = [root] if rng.random() < 0.5 else [root, root + 7, root + 14]
        yield tuple(Note(0.0, length, pitch, 90) for pitch in pitches), 2.0, 0.0


def _synth(rng):
    for _ in range(3):  # keys, plucks and bells as single-note one-shots
        yield (Note(0.0, rng.uniform(0.3, 2.0), int(rng.integers(48, 84))),), 1.0, 0.0


def _vocal(rng):
    for _ in range(4):  # sung lines: slow, legato, a narrow range
        beat, tonic, time, degree, notes = _beat(rng), int(rng.integers(57, 69)), 0.0, 4, []
        while time < 8 * beat:
            length = beat * rng.choice([1.0, 1.5, 2.0])
            degree = int(np.clip(degree + rng.integers(-1, 2), 0, 9))
            notes.append(Note(time, length * 0.98, _scale(tonic, degree)))
            time += length
        yield tuple(notes), 0.8, 0.0


def _fx(rng):
    for _ in range(3):  # the GM sound effects, held
        yield (Note(0.0, rng.uniform(1.0, 4.0), int(rng.integers(48, 72))),), 1.5, 0.0


_MAKERS = {"bass": _bass, "lead": _lead, "arp": _arp, "chord": _chord, "pad": _pad,
           "atmo": _atmo, "synth": _synth, "vocal": _vocal, "fx": _fx}


def sweep_phrases(program: int, *, seed: int) -> list[Phrase]:
    """Risers and downlifters: one held note bent 12-24 semitones up or down over 2-4 s."""
    rng = np.random.default_rng([seed, program, 7])
    phrases = []
    for index in range(4):
        rising = index % 2 == 0
        pitch = int(rng.integers(40, 60) if rising else rng.integers(60, 80))
        bend = rng.uniform(12, 24) * (1 if rising else -1)
        phrases.append(Phrase(f"fx-sweep-p{program:03d}-{index}", "fx",
                              (Note(0.0, rng.uniform(2.0, 4.0), pitch),), 0.5, bend))
    return phrases


# -- drums ---------------------------------------------------------------------------------

#: General MIDI percussion key map → category (whistles, clicks and cuica left out).
GM_DRUMS = {35: "kick", 36: "kick", 37: "perc", 38: "snare", 39: "clap", 40: "snare",
            41: "tom", 42: "hihat", 43: "tom", 44: "hihat", 45: "tom", 46: "hihat",
            47: "tom", 48: "tom", 49: "cymbal", 50: "tom", 51: "cymbal", 52: "cymbal",
            53: "cymbal", 54: "perc", 55: "cymbal", 56: "perc", 57: "cymbal", 58: "perc",
            59: "cymbal", 60: "perc", 61: "perc", 62: "perc", 63: "perc", 64: "perc",
            65: "perc", 66: "perc", 67: "perc", 68: "perc", 69: "perc", 70: "perc",
            73: "perc", 74: "perc", 75: "perc", 76: "perc", 77: "perc", 80: "perc", 81: "perc"}
#: GM drum kits (bank 128 programs): standard, room, power, electronic, TR-808, jazz, brush.
GM_KITS = (0, 8, 16, 24, 25, 32, 40)
#: FluidR3's variations of them (standard 1-7, room 1-7, power 1-3, jazz 1-4, brush 1-2);
#: hits they share with the main kits are dropped as duplicates by the build.
FLUID_KITS = (*range(1, 8), *range(9, 16), 17, 18, 19, 33, 34, 35, 36, 41, 42)
_GROOVES = {  # sixteenth-step patterns for kick, snare/clap and hats
    "four": ((0, 4, 8, 12), (4, 12), tuple(range(2, 16, 4))),
    "break": ((0, 10), (4, 12), tuple(range(0, 16, 2))),
    "hiphop": ((0, 7, 10), (4, 12), tuple(range(0, 16, 2))),
    "dnb": ((0, 10), (4, 12), tuple(range(0, 16, 2))),
    "shuffle": ((0, 8), (4, 12), (0, 3, 4, 7, 8, 11, 12, 15)),
}


def drum_hit_phrases(kit: int, notes: dict[int, str], velocities: tuple[int, ...]
                     ) -> list[Phrase]:
    """One phrase per drum note and velocity: a single hit with room to ring out."""
    return [Phrase(f"kit{kit:03d}-n{note}-v{velocity}", label,
                   (Note(0.0, 1.0, note, velocity),), tail_s=4.0)
            for note, label in notes.items() for velocity in velocities]


#: Parts a top loop (a drum loop without kick or snare: hats, shakers, hand drums) draws two
#: or three from: GM note and its sixteenth steps in a bar (None: seven drawn at random).
_TOP_PARTS = ((42, tuple(range(0, 16, 2))), (42, tuple(range(16))), (44, (0, 4, 8, 12)),
              (46, (2, 6, 10, 14)), (54, tuple(range(16))), (54, (4, 12)),
              (69, tuple(range(16))), (70, tuple(range(0, 16, 2))), (62, None), (63, None),
              (51, tuple(range(0, 16, 2))))
_TOP_LOOPS = 3  # per kit


def drum_loop_phrases(kit: int, *, seed: int) -> list[Phrase]:
    """Two-bar grooves (kick, snare or clap, closed or open hats) at 85-175 BPM, and top
    loops (`_TOP_PARTS`) at 85-175 BPM."""
    rng = np.random.default_rng([seed, kit, 35])
    phrases = []
    for index, (name, (kicks, snares, hats)) in enumerate(_GROOVES.items()):
        bpm = {"dnb": rng.uniform(160, 175), "hiphop": rng.uniform(85, 100)}.get(
            name, rng.uniform(110, 140))
        step = 60.0 / bpm / 4
        snare, hat = int(rng.choice([38, 40, 39])), int(rng.choice([42, 42, 46]))
        notes = [Note((bar * 16 + s) * step, step, pitch, int(rng.integers(80, 127)))
                 for bar in range(2) for steps, pitch in ((kicks, 36), (snares, snare),
                                                          (hats, hat)) for s in steps]
        end = max(note.start_s + note.length_s for note in notes)
        phrases.append(Phrase(f"kit{kit:03d}-loop{index}", "drum_loop", tuple(notes),
                              tail_s=32 * step - end))  # exactly two bars long
    for index in range(_TOP_LOOPS):
        step = 60.0 / rng.uniform(85, 175) / 4
        notes = []
        for part in rng.choice(len(_TOP_PARTS), size=int(rng.integers(2, 4)), replace=False):
            pitch, steps = _TOP_PARTS[part]
            steps = steps or tuple(np.sort(rng.choice(16, size=7, replace=False)))
            notes += [Note((bar * 16 + s) * step, step, pitch, int(rng.integers(60, 120)))
                      for bar in range(2) for s in steps]
        end = max(note.start_s + note.length_s for note in notes)
        phrases.append(Phrase(f"kit{kit:03d}-top{index}", "drum_loop", tuple(notes),
                              tail_s=32 * step - end))
    return phrases
