"""Musical key: filename tokens and chroma-profile matching (pure functions).

Keys are canonical strings (`daemon.keys`): the tonic spelled with sharps plus the mode,
``"F# minor"``, ``"A# major"``.
"""

from __future__ import annotations

import re

import numpy as np

from daemon.keys import ACCIDENTALS, DEFAULT_PROFILE, LETTERS, format_key, key_scores

#: EDM is overwhelmingly minor (Faraldo et al. 2016; their "edmm" profile reports every
#: key as minor). Bass lines and drones often sound only tonic and fifth, which leaves
#: major and minor of the same tonic nearly tied; within this correlation margin the
#: minor wins. A real major third separates the two by far more (0.15-0.3).
MINOR_MARGIN = 0.08

_GERMAN = {"c": 0, "cis": 1, "des": 1, "d": 2, "dis": 3, "es": 3, "e": 4, "f": 5, "fis": 6,
           "ges": 6, "g": 7, "gis": 8, "as": 8, "a": 9, "ais": 10, "b": 10, "h": 11}
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
            return format_key(tonic, _LONG_MODES[match["mode"].lower()])
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
        shift = ACCIDENTALS[accidental.lower()] if accidental else 0
        return format_key(LETTERS[match["tonic"].lower()] + shift, mode)
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
    best = best_key_index(scores)
    mode = "major" if best < 12 else "minor"
    # Chroma is energy (>= 0); the small floor keeps one empty pitch class from zeroing
    # the geometric mean of an otherwise flat profile.
    positive = np.maximum(vector, 0.0) + 1e-3 * max(float(vector.max()), 1e-12)
    peakedness = 1.0 - np.exp(np.mean(np.log(positive))) / np.mean(positive)
    # sqrt: a broad but clearly shaped chroma (a resonant acid line) keeps some weight.
    confidence = float(np.clip(scores[best], 0.0, 1.0) * np.sqrt(max(peakedness, 0.0)))
    return format_key(best % 12, mode), confidence


def best_key_index(scores: np.ndarray) -> int:
    """Index of the best key of `key_scores` (0-11 major, 12-23 minor); a near tie between
    parallel keys goes to the minor (`MINOR_MARGIN`)."""
    best = int(np.argmax(scores))
    if best < 12 and scores[best + 12] >= scores[best] - MINOR_MARGIN:
        best += 12  # parallel minor, see MINOR_MARGIN
    return best
