"""Musical key with a confidence and a kit prior: most kits are written in one key.

One loop alone often cannot tell its key: a bass line of tonic and fifth fits major and
minor alike, a drone fits the keys a fifth apart. The kit can: its key is what its names
say (the user's corrections, key tokens in file names and in the kit's name) or else the
key all its tonal stems' chroma agree on best. Each audio stem then follows the kit key
when that key scores within `FOLLOW_MARGIN` of its own best, or when its own best is a
fifth, the relative, the parallel or the mediant key of the kit's: the ways a chroma
misreads a key (recorded notes' harmonics lean it to the dominant; a melody dwelling on the
third, fifth and seventh of a major key reads the minor key on its third), not trusted
then. A stem clearly in
an unrelated key keeps its own and is not trusted either. `trusted` is False for every key
the renderer should check by ear before it relies on it. Pure functions: chroma in,
`KeyChoice`s out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daemon.ingest.key import best_key_index, estimate_key
from daemon.keys import format_key, key_scores, parse_key, relative_key, with_fundamentals

#: A stem follows its kit's key when that key's correlation is within this of its own
#: best: parallel, relative and fifth confusions score that close (tuning kits, seeds
#: 500-579: 0.80 MIREX alone, 1.00 following the kit); a stem in an unrelated key does not.
FOLLOW_MARGIN = 0.15
#: Keys below this confidence are marked for the renderer to check by ear.
KEY_TRUST = 0.6
_FLAT = 0.05  # `estimate_key` confidence of a chroma too flat to name a key
_NAMED_VOTE, _USER_VOTE = 2.0, 3.0
# Confidence by the evidence behind a key: how often each case was right on the tuning
# kits, rounded down for recordings (a kit key: 0.99 synthesised).
_AGREES, _AGREES_WITH_ONE, _FOLLOWS, _DISAGREES = 0.9, 0.8, 0.7, 0.3
#: A stem beyond `FOLLOW_MARGIN` whose key is a close relative of its kit's follows the kit:
#: right 24 of 26 times on recorded-instrument kits (bench/real_kits.py, seeds 100-101) before
#: the mediant was a relative; with it the kit pass's key on seeds 100-102 rose from 0.967,
#: 0.912, 0.912 to 1.000, 0.954, 0.954. It rests on the relation, not on a fit, so the
#: renderer still checks it by ear.
_FOLLOWS_RELATED = 0.5
_NAME_CONFIDENCE = 0.95


@dataclass(frozen=True)
class KeyChoice:
    """A stem's key (None for no key), how sure (0..1), where it came from
    (``"filename"``, ``"audio"``, ``"kit"``, ``"user"``, ``"none"``), whether to trust it
    without listening, and why not when the evidence is weak."""

    key: str | None
    confidence: float
    source: str
    trusted: bool
    reason: str = ""


@dataclass(frozen=True)
class KeyEvidence:
    """What one tonal stem says about its key: its summed chroma ``(12,)`` (audio), the key
    in its names, the user's correction."""

    chroma: np.ndarray | None = None
    named: str | None = None
    user: str | None = None


def key_from_name_or_audio(*, named: str | None, chroma: np.ndarray | None) -> KeyChoice:
    """One stem's key on its own evidence: the name's, else the chroma's (not trusted until
    its kit confirms it)."""
    if named is not None:
        return KeyChoice(named, _NAME_CONFIDENCE, "filename", True)
    if chroma is None or not np.any(chroma):
        return KeyChoice(None, 0.0, "none", False, "no pitched content")
    key, confidence = estimate_key(chroma=chroma)
    if confidence < _FLAT:
        return KeyChoice(None, 0.0, "none", False, "chroma too flat to name a key")
    return KeyChoice(key, round(confidence, 3), "audio", False, "not yet confirmed by its kit")


def resolve_keys(stems: Sequence[KeyEvidence], *, kit_named: str | None = None
                 ) -> list[KeyChoice]:
    """The key of every tonal stem of one kit, in order (see the module docstring).

    `kit_named` is a key written in the kit's name. The kit has a key when it has at least
    two pieces of evidence (names, the kit's name, stems with a readable chroma).
    """
    own = [_own(stem) for stem in stems]
    audio = [i for i, stem in enumerate(stems) if own[i].source == "audio"]
    named = [choice.key for choice in own if choice.source in ("user", "filename")]
    kit_key = _kit_key(stems, own, audio, kit_named)
    evidence = len(audio) + len(named) + (kit_named is not None)
    choices = []
    for stem, choice in zip(stems, own):
        if choice.source != "audio":
            choices.append(choice)
        elif kit_key is None or evidence < 2:
            choices.append(_alone(choice))
        else:
            choices.append(_against_kit(stem.chroma, kit_key, evidence=evidence))
    return choices


def _own(stem: KeyEvidence) -> KeyChoice:
    if stem.user is not None:
        return KeyChoice(stem.user, 1.0, "user", True)
    return key_from_name_or_audio(named=stem.named, chroma=stem.chroma)


def _kit_key(stems: Sequence[KeyEvidence], own: list[KeyChoice], audio: list[int],
             kit_named: str | None) -> str | None:
    """The names' majority (the user's word counting most), else the audio consensus."""
    votes: Counter[str] = Counter()
    for choice in own:
        if choice.source in ("user", "filename"):
            votes[choice.key] += _USER_VOTE if choice.source == "user" else _NAMED_VOTE
    if kit_named is not None:
        votes[kit_named] += _NAMED_VOTE
    if votes:
        return max(sorted(votes), key=lambda key: votes[key])
    if not audio:
        return None
    # Each stem's correlations count alike, however loud or long the stem. Summed over a
    # kit's recorded instruments, their harmonics lean the chroma to the key a fifth up:
    # the kit's key counts each pitch class's possible fundamental in (bench/real_kits.py,
    # development seeds 100-103: 0.958 -> 0.990 MIREX; a single stem's reading gains
    # nothing, 0.690 -> 0.688, and the renderer's ear judges single stems).
    total = sum(key_scores(with_fundamentals(_normalised(stems[i].chroma))) for i in audio)
    best = best_key_index(total)
    return format_key(best % 12, "major" if best < 12 else "minor")


def _against_kit(chroma: np.ndarray, kit_key: str, *, evidence: int) -> KeyChoice:
    scores = key_scores(_normalised(chroma))
    best = best_key_index(scores)
    alone = format_key(best % 12, "major" if best < 12 else "minor")
    tonic, mode = parse_key(kit_key)
    kit_score = scores[tonic + (12 if mode == "minor" else 0)]
    if alone == kit_key:
        return KeyChoice(kit_key, _AGREES if evidence >= 3 else _AGREES_WITH_ONE, "audio", True)
    if kit_score >= scores[best] - FOLLOW_MARGIN:
        return KeyChoice(kit_key, _FOLLOWS, "kit", _FOLLOWS >= KEY_TRUST,
                         f"follows its kit's key; alone it reads {alone}")
    if _related(alone, kit_key):
        return KeyChoice(kit_key, _FOLLOWS_RELATED, "kit", False,
                         f"follows its kit's key; alone it reads {alone}, a close relative")
    return KeyChoice(alone, _DISAGREES, "audio", False,
                     f"disagrees with its kit's key {kit_key}")


def _related(key: str, other: str) -> bool:
    """A fifth apart in one mode, relative, parallel, or mediant (the minor key a major third
    above a major one, six notes shared: G major and B minor): how a stem's chroma misreads
    its key."""
    (tonic, mode), (other_tonic, other_mode) = parse_key(key), parse_key(other)
    if mode == other_mode:
        return (tonic - other_tonic) % 12 in (5, 7)
    major, minor = (tonic, other_tonic) if mode == "major" else (other_tonic, tonic)
    return (tonic == other_tonic or relative_key(tonic, mode) == (other_tonic, other_mode)
            or (minor - major) % 12 == 4)


def _alone(choice: KeyChoice) -> KeyChoice:
    return KeyChoice(choice.key, min(choice.confidence, 0.5), choice.source, False,
                     "only tonal stem of its kit: no kit consensus")


def _normalised(chroma: np.ndarray) -> np.ndarray:
    vector = np.asarray(chroma, dtype=np.float64)
    return vector / max(float(vector.sum()), 1e-12)
