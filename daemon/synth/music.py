"""Symbolic music for the tonal loops: scales, diatonic chords and note patterns.

Patterns are lists of `Note` on a sixteenth-note grid. They are written to carry the key
clearly (the tonic dominates, every note is a scale tone) and the tempo clearly (every
onset sits on the grid), because the kit doubles as ground truth for key and tempo tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from daemon.keys import parse_key

#: Semitones of each scale degree above the tonic (natural minor / major).
SCALE_STEPS = {"minor": (0, 2, 3, 5, 7, 8, 10), "major": (0, 2, 4, 5, 7, 9, 11)}
#: Chord progressions as scale degrees, one chord per bar (i-VI-iv-i, i-iv-VI-i, i-VI-v-i).
#: All start and end on the tonic and are diatonic in both modes (no diminished chord).
PROGRESSIONS = ((0, 5, 3, 0), (0, 3, 5, 0), (0, 5, 4, 0))
#: Lowest MIDI note of each register: the tonic is the first note at or above it.
BASS_FLOOR = 28  # E1: sub and rolling bass, 41-78 Hz tonics
ACID_FLOOR = 40  # E2
PAD_FLOOR = 52  # E3
ARP_FLOOR = 64  # E4
DRONE_FLOOR = 28  # E1: the drone's tonic and fifth; its octave and third sit 12 above
STEPS_PER_BAR = 16


@dataclass(frozen=True)
class Note:
    """One note: start and gate length in sixteenth steps, MIDI pitch, 0..1 velocity.

    `slide` glides from the previous note without re-triggering the envelopes (TB-303).
    """

    step: float
    length: float
    midi: int
    velocity: float = 1.0
    accent: bool = False
    slide: bool = False


def scale_note(key: str, degree: int, *, floor: int) -> int:
    """MIDI note of scale `degree` (0 = tonic; may exceed 6 or be negative) above `floor`.

    Raises `PlanError` when `key` is not canonical (``"A minor"``).
    """
    tonic, mode = parse_key(key)
    octave, index = divmod(degree, 7)
    return floor + (tonic - floor) % 12 + SCALE_STEPS[mode][index] + 12 * octave


def triad(key: str, degree: int, *, floor: int) -> tuple[int, int, int]:
    """Diatonic triad (root, third, fifth) built on scale `degree`."""
    return tuple(scale_note(key, degree + 2 * k, floor=floor) for k in range(3))


def chord_degrees(*, bars: int, seed: int) -> list[int]:
    """One chord degree per bar, cycling a progression picked by `seed`."""
    progression = PROGRESSIONS[seed % len(PROGRESSIONS)]
    return [progression[bar % len(progression)] for bar in range(bars)]


def rolling_bass(key: str, *, bars: int, rng: np.random.Generator) -> list[Note]:
    """Rolling techno bass: the three sixteenths after each kick, on the tonic.

    Every second bar ends on a fifth, octave or seventh so the line breathes.
    """
    root = scale_note(key, 0, floor=BASS_FLOOR)
    notes = []
    for bar in range(bars):
        turn = scale_note(key, int(rng.choice([4, 7, 6])), floor=BASS_FLOOR)
        for beat in range(4):
            pitch = turn if bar % 2 == 1 and beat == 3 else root
            for offset, velocity in ((1, 1.0), (2, 0.75), (3, 0.85)):
                step = bar * STEPS_PER_BAR + beat * 4 + offset
                notes.append(Note(step=step, length=0.7, midi=pitch, velocity=velocity))
    return notes


def offbeat_sub(key: str, *, bars: int, rng: np.random.Generator) -> list[Note]:
    """Offbeat sub bass: an eighth-note tonic between the kicks; the last bar may lift."""
    root = scale_note(key, 0, floor=BASS_FLOOR)
    lift = scale_note(key, int(rng.choice([4, 7])), floor=BASS_FLOOR)
    return [Note(step=bar * STEPS_PER_BAR + beat * 4 + 2, length=1.6,
                 midi=lift if bar == bars - 1 and beat == 3 else root)
            for bar in range(bars) for beat in range(4)]


def acid_line(key: str, *, bars: int, rng: np.random.Generator) -> list[Note]:
    """TB-303 style line: a two-bar phrase of tonic-heavy scale notes, accents and slides."""
    phrase = _acid_phrase(key, rng=rng)
    notes = []
    for bar in range(bars):
        half = bar % 2  # which bar of the two-bar phrase plays
        shift = (bar - half) * STEPS_PER_BAR
        notes += [replace(n, step=n.step + shift) for n in phrase
                  if half * STEPS_PER_BAR <= n.step < (half + 1) * STEPS_PER_BAR]
    return notes


def _acid_phrase(key: str, *, rng: np.random.Generator) -> list[Note]:
    """32 steps; degree weights favour the tonic (and its octaves) so the key is unambiguous."""
    degrees = np.array([0, 7, -7, 2, 4, 6, 3])
    weights = np.array([0.42, 0.16, 0.08, 0.1, 0.12, 0.08, 0.04])
    # About one step in five rests; step 0 always plays the tonic.
    steps = [0] + [s for s in range(1, 2 * STEPS_PER_BAR) if rng.random() > 0.22]
    pitches = [0, *rng.choice(degrees, size=len(steps) - 1, p=weights)]
    # A slide needs a note on the step before it; step 0 never slides, so the loop
    # restarts with a fresh envelope.
    slides = [i > 0 and steps[i - 1] == step - 1 and rng.random() < 0.3
              for i, step in enumerate(steps)]
    accents = rng.random(len(steps)) < 0.3
    notes = []
    for i, (step, degree) in enumerate(zip(steps, pitches)):
        tied = i + 1 < len(steps) and slides[i + 1]  # a note slid into holds its gate open
        notes.append(Note(step=step, length=1.0 if tied else 0.55,
                          midi=scale_note(key, int(degree), floor=ACID_FLOOR),
                          velocity=0.8, accent=bool(accents[i]), slide=slides[i]))
    return notes


def arpeggio(key: str, *, bars: int, seed: int, rng: np.random.Generator) -> list[Note]:
    """Sixteenth-note arpeggio over the bar's chord (same progression as the pad)."""
    orders = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 1, 3, 2))
    order = orders[int(rng.integers(len(orders)))]
    notes = []
    for bar, degree in enumerate(chord_degrees(bars=bars, seed=seed)):
        chord = triad(key, degree, floor=ARP_FLOOR)
        tones = (*chord, chord[0] + 12)
        for sixteenth in range(STEPS_PER_BAR):
            velocity = 1.0 if sixteenth % 4 == 0 else 0.5
            notes.append(Note(step=bar * STEPS_PER_BAR + sixteenth, length=0.5,
                              midi=tones[order[sixteenth % 4]], velocity=velocity))
    return notes
