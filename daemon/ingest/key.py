"""Musical key: filename tokens and chroma-profile matching (pure functions).

Keys are canonical strings, tonic spelled with sharps as in `daemon.compose.plan.TONICS`
plus the mode: ``"F# minor"``, ``"A# major"``.
"""

from __future__ import annotations

import re

import numpy as np

from daemon.compose.plan import TONICS

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
#: The profile `estimate_key` uses unless told otherwise (chosen by bench/accuracy.py).
DEFAULT_PROFILE = "edma"
#: EDM is overwhelmingly minor (Faraldo et al. 2016; their "edmm" profile reports every
#: key as minor). Bass lines and drones often sound only tonic and fifth, which leaves
#: major and minor of the same tonic nearly tied; within this correlation margin the
#: minor wins. A real major third separates the two by far more (0.15-0.3).
MINOR_MARGIN = 0.08

_LETTER = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_GERMAN = {"c": 0, "cis": 1, "des": 1, "d": 2, "dis": 3, "es": 3, "e": 4, "f": 5, "fis": 6,
           "ges": 6, "g": 7, "gis": 8, "as": 8, "a": 9, "ais": 10, "b": 10, "h": 11}
_ACCIDENTAL = {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "flat": -1}
_LONG_MODES = {"min": "minor", "minor": "minor", "moll": "minor", "maj": "major",
               "major": "major", "dur": "major"}
# A key token: delimited by non-letters (digits may touch it: "128Am", "Am7"). A single
# lower-case "m" needs an upper-case tonic ("Fm", not "FM" synthesis or "fm"); a bare
# tonic counts only with an accidental ("Bb", "C#"), never a lone letter ("Kick_A").
_ENGLISH = re.compile(
    r"(?<![A-Za-z])(?P<tonic>[A-Ga-g])(?:[\s_-]?(?P<acc>(?i:sharp|flat))|(?P<sym>[#♯♭]|b(?![a-z])"
    r"|b(?=m(?![a-z])|min|maj)))?(?:[\s_-]?(?P<mode>(?i:minor|major|min|maj))|(?P<m>m))?"
    r"(?![A-Za-z])")
_GERMAN_KEY = re.compile(r"(?<![A-Za-z])(?P<tonic>[A-Ha-h](?:is|es|s)?)[\s_-]?"
                         r"(?P<mode>moll|dur)(?![A-Za-z])", re.IGNORECASE)


def canonical_key(pitch_class: int, mode: str) -> str:
    """``canonical_key(6, "minor") == "F# minor"``."""
    return f"{TONICS[pitch_class % 12]} {mode}"


def key_from_name(name: str) -> str | None:
    """Key written in a file or folder name (file name first), or None.

    Understands ``Am``, ``F#min``, ``C major``, ``Fm``, ``Bb``, ``Ebm``, ``A minor``,
    ``F sharp minor`` and German ``c-moll``/``Fis-Dur``/``h-moll``; ignores ``Amen``,
    ``Kick_A`` and ``FM``.
    """
    for part in reversed([part for part in re.split(r"[\\/]", name) if part]):
        stem = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", part)
        found = _german_key(stem) or _english_key(stem)
        if found:
            return found
    return None


def _german_key(text: str) -> str | None:
    for match in _GERMAN_KEY.finditer(text):
        tonic = _GERMAN.get(match["tonic"].lower())
        if tonic is not None:
            return canonical_key(tonic, _LONG_MODES[match["mode"].lower()])
    return None


def _english_key(text: str) -> str | None:
    for match in _ENGLISH.finditer(text):
        accidental = match["acc"] or match["sym"]
        if match["mode"]:
            mode = _LONG_MODES[match["mode"].lower()]
        elif match["m"] and match["tonic"].isupper():
            mode = "minor"
        elif accidental and not match["m"] and match["tonic"].isupper():
            mode = "major"  # "Bb", "C#": the accidental makes a bare tonic unambiguous
        else:
            continue
        shift = _ACCIDENTAL[accidental.lower()] if accidental else 0
        return canonical_key(_LETTER[match["tonic"].lower()] + shift, mode)
    return None


def estimate_key(*, chroma: np.ndarray, profile: str = DEFAULT_PROFILE) -> tuple[str, float]:
    """Best-matching key of a chroma (``(12,)`` mean or ``(12, frames)``; index 0 = C).

    Pearson correlation against the 24 rotations of the major and minor `profile`;
    a near tie between parallel keys goes to the minor (`MINOR_MARGIN`).

    Returns
    -------
    (key, confidence)
        `confidence` in 0..1 is the winning correlation scaled by the square root of
        how peaked the chroma is (1 - its flatness), so flat or noisy chroma reads near 0.
    """
    vector = np.asarray(chroma, dtype=np.float64)
    if vector.ndim == 2:
        vector = vector.mean(axis=1)
    if vector.shape != (12,) or not np.all(np.isfinite(vector)):
        raise ValueError(f"chroma must be 12 finite values per frame (got {vector.shape})")
    scores = key_scores(vector, profile=profile)
    best = int(np.argmax(scores))
    if best < 12 and scores[best + 12] >= scores[best] - MINOR_MARGIN:
        best += 12  # parallel minor, see MINOR_MARGIN
    mode = "major" if best < 12 else "minor"
    # Chroma is energy (>= 0); the small floor keeps one empty pitch class from zeroing
    # the geometric mean of an otherwise flat profile.
    positive = np.maximum(vector, 0.0) + 1e-3 * max(float(vector.max()), 1e-12)
    peakedness = 1.0 - np.exp(np.mean(np.log(positive))) / np.mean(positive)
    # sqrt: a broad but clearly shaped chroma (a resonant acid line) keeps some weight.
    confidence = float(np.clip(scores[best], 0.0, 1.0) * np.sqrt(max(peakedness, 0.0)))
    return canonical_key(best % 12, mode), confidence


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
