"""Musical keys: canonical text, relative keys, pitch shifts between keys and their fit, and
the correlation of a chroma with the 24 key profiles (`key_scores`).

A key is canonical text: the tonic spelled with sharps (`TONICS`) and the mode, ``"F# minor"``,
``"A# major"``. Plans, stems and kit specifications all carry keys in this form; prompts
and file names are read into it (`daemon.compose.prompt`, `daemon.ingest.key`).
"""

from __future__ import annotations

import numpy as np

from daemon.errors import PlanError

TONICS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = ("major", "minor")
#: Pitch class of each note letter, and the shift of each way to write an accidental.
LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
ACCIDENTALS = {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "flat": -1}
#: Fit of a stem's key to a plan's (`key_fit`): the relative key shares the scale; a shifted
#: stem is usable, less so the further it moves from the pitch it was recorded at.
SAME_KEY_SCORE, RELATIVE_KEY_SCORE = 1.0, 0.9
SHIFT_SCORE, SHIFT_SCORE_PER_SEMITONE = 0.8, 0.1

# Key profiles, index 0 = tonic. EDMA: profiles learnt from electronic dance music by
# Á. Faraldo, E. Gómez, S. Jordà, P. Herrera, "Key Estimation in Electronic Dance Music",
# ECIR 2016 (values as published in Essentia's KeyEDM, profileType "edma").
EDMA = (
    (1.0000, 0.2875, 0.5020, 0.4048, 0.6050, 0.5614, 0.3205, 0.7966, 0.3159, 0.4506, 0.4202,
     0.3889),
    (1.0000, 0.3096, 0.4415, 0.5827, 0.3262, 0.4948, 0.2889, 0.7804, 0.4328, 0.2903, 0.5331,
     0.3217),
)
# C. L. Krumhansl, "Cognitive Foundations of Musical Pitch", Oxford University Press 1990
# (probe-tone ratings of Krumhansl & Kessler 1982).
KRUMHANSL = (
    (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
    (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17),
)
# D. Temperley, "What's Key for Key? The Krumhansl-Schmuckler Key-Finding Algorithm
# Reconsidered", Music Perception 17(1), 1999.
TEMPERLEY = (
    (5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
    (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0),
)
PROFILES = {"edma": EDMA, "krumhansl": KRUMHANSL, "temperley": TEMPERLEY}
#: The profile key estimation uses unless told otherwise (chosen by bench/accuracy.py).
DEFAULT_PROFILE = "edma"
#: A spectral peak may be the third harmonic of a note a fifth below it (3f lies 19
#: semitones above f). `with_fundamentals` lends each pitch class this share of its weight
#: to the class a fifth below: 0.6 ** 2, the third harmonic's weight in Essentia's
#: polyphonic key profiles (Key: usePolyphony, numHarmonics 4, slope 0.6, as used with the
#: EDMA profile). Correlating the lent chroma with a profile has the same numerator as
#: correlating the chroma with that polyphonic profile. Not fitted here.
THIRD_HARMONIC_SHARE = 0.36


def parse_key(key: str, *, where: str = "key") -> tuple[int, str]:
    """Split a canonical key such as ``"F# minor"`` into (pitch class 0..11, mode).

    Raises
    ------
    PlanError
        `key` is not canonical; the message starts with `where`.
    """
    parts = key.split()
    if len(parts) != 2 or parts[0] not in TONICS or parts[1] not in MODES:
        raise PlanError(f"{where}: must look like 'F# minor' or 'C major' (got {key!r})")
    return TONICS.index(parts[0]), parts[1]


def format_key(pitch_class: int, mode: str) -> str:
    """Canonical key text for a pitch class (0 = C, taken modulo 12) and mode:
    ``format_key(6, "minor") == "F# minor"``."""
    return f"{TONICS[pitch_class % 12]} {mode}"


def relative_key(pitch_class: int, mode: str) -> tuple[int, str]:
    """The key with the same scale in the other mode: A minor ↔ C major (the minor tonic
    lies three semitones below the major one)."""
    if mode == "minor":
        return (pitch_class + 3) % 12, "major"
    return (pitch_class + 9) % 12, "minor"


def key_shift(stem_key: str, plan_key: str) -> tuple[int, str]:
    """Smallest shift (semitones, -5..6) moving `stem_key` onto `plan_key` or its relative,
    and the relation: ``"same"``, ``"relative"`` (shift 0, other mode) or ``"shift"``.

    Raises
    ------
    PlanError
        Either key is not canonical.
    """
    stem_pc, stem_mode = parse_key(stem_key)
    plan_pc, plan_mode = parse_key(plan_key)
    if stem_mode != plan_mode:
        stem_pc = relative_key(stem_pc, stem_mode)[0]
    diff = (plan_pc - stem_pc) % 12
    shift = diff - 12 if diff > 6 else diff
    if shift:
        return shift, "shift"
    return 0, "same" if stem_mode == plan_mode else "relative"


def key_fit(stem_key: str, plan_key: str) -> tuple[int, float]:
    """The shift that brings `stem_key` to `plan_key` (`key_shift`) and how well the stem
    then fits, 0..1: 1.0 same key, 0.9 relative key, 0.8 one semitone away, 0.1 less per
    further semitone.

    Raises
    ------
    PlanError
        Either key is not canonical.
    """
    shift, relation = key_shift(stem_key, plan_key)
    if relation == "same":
        return 0, SAME_KEY_SCORE
    if relation == "relative":
        return 0, RELATIVE_KEY_SCORE
    return shift, SHIFT_SCORE - SHIFT_SCORE_PER_SEMITONE * (abs(shift) - 1)


def with_fundamentals(vector: np.ndarray) -> np.ndarray:
    """An audio chroma ``(12,)`` with each pitch class's possible fundamental a fifth below
    counted in (`THIRD_HARMONIC_SHARE`)."""
    vector = np.asarray(vector, dtype=np.float64)
    return vector + THIRD_HARMONIC_SHARE * np.roll(vector, -7)


def key_scores(vector: np.ndarray, *, profile: str = DEFAULT_PROFILE) -> np.ndarray:
    """Correlations ``(24,)``: C..B major, then C..B minor."""
    major, minor = (np.asarray(p, dtype=np.float64) for p in PROFILES[profile])
    centred = vector - vector.mean()
    norm = np.linalg.norm(centred)
    if norm == 0:
        return np.zeros(24)
    scores = []
    for template in (major, minor):
        rotations = np.stack([np.roll(template, tonic) for tonic in range(12)])
        rotations -= rotations.mean(axis=1, keepdims=True)
        scores.append(rotations @ centred / (np.linalg.norm(rotations, axis=1) * norm))
    return np.concatenate(scores)
