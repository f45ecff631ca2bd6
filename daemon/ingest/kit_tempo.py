"""Loop tempo from all the evidence at once: of one loop, or of every loop of a kit.

The loops of a kit share a tempo, and each loop holds evidence about it that the others
lack. `resolve_tempi` scores every plausible tempo against all of it:

- the length: a loop is a whole number of 4/4 bars (1, 2, 4, 8 or 16 mostly);
- the audio pulse (`tempo.measure_pulse`), which may read an octave, 3:2, 4:3 or 5:4 off;
- tempo tokens in file and folder names, and the user's own correction;
- a BPM or a genre word in the kit's name (the genre's tempo range from ``rules/genres``);
- the category's preferred range, the tie-break between whole-bar tempi an octave apart
  while no drum loop settled the octave.

A 4-bar loop at 140 whose pulse reads 175 (5 bars) is outvoted by the kit's other loops
and by the preferred bar count. Loops no tempo explains form a second tempo (a kit that
mixes two) and are told so in their `reason`. Pure functions: numbers in, `TempoChoice`s out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from daemon.categories import DEFAULT_BPM_RANGE
from daemon.ingest.tempo import (
    BEATS_PER_BAR,
    LOOP_BARS,
    LOOP_MAX_BPM,
    LOOP_MIN_BPM,
    TempoChoice,
    name_tempi,
)

#: A whole-bar length fits within 1 %, and within an eighth of a beat however many bars
#: (a 4-bar loop at 140 BPM within 54 ms): a long loop must not fit every tempo.
LENGTH_TOLERANCE = 0.01
_LENGTH_TOLERANCE_BEATS = 0.125
#: A pulse reading relates to a tempo within 3 % (real loops swing and drift).
PULSE_TOLERANCE = 0.03
_MAX_BARS = 32
#: Any length is 4 bars at some tempo: a whole-bar length alone is weaker evidence than a
#: clear pulse, and strong only where the two agree. Counts outside LOOP_BARS (3, 5, 6...)
#: are real, but rare.
_PREFERRED_BARS, _OTHER_BARS = 0.6, 0.2
#: How a pulse reading at `ratio` times a tempo supports that tempo: the same 1.0; 3:2, 4:3,
#: 5:4 misreads little; an octave off (hats in eighths) nearly as much as the same when the
#: drums could not settle the octave, half as much when they did.
_RELATIONS = ((1.0, 1.0), (2.0, 0.95), (0.5, 0.95), (1.5, 0.1), (2 / 3, 0.1), (4 / 3, 0.1),
              (0.75, 0.1), (1.25, 0.1), (0.8, 0.1))
#: Pulse / tempo ratios a loop's pulse may show: the tempo, an octave, 3:2, 4:3, 5:4.
PULSE_RATIOS = tuple(ratio for ratio, _ in _RELATIONS)
_SETTLED_OCTAVE = 0.5
_PREFERRED = 0.1  # per loop, for a tempo in its category's preferred range: a tie-break only
_GENRE = 0.3  # per loop, for a tempo in the range of the genre the kit's name names
_NAMED, _BARE, _USER = 3.0, 1.0, 5.0  # a loop's explicit / bare name token, the user's word
_KIT_NAMED, _KIT_BARE = 0.5, 0.25  # per loop (at least 3 and 1): a BPM in the kit's name
#: Pulse coherence of noise (0.05) up to a clear pulse (0.25) maps to strength 0..1.
_NOISE_PULSE, _CLEAR_PULSE = 0.05, 0.25
_FAMILY = (1.0, 2.0, 0.5)  # pulse relations that agree with a tempo: itself, an octave
_CLEAR = 0.5  # pulse strength that ties a loop off the bar grid to a tempo, or names a misread
_MAX_TEMPI = 3  # a kit mixing more tempi than this is three plus strays
_ONE_LOOP = "only loop of its kit: no kit consensus"


@dataclass(frozen=True)
class LoopEvidence:
    """What one loop says about its tempo.

    `pulse_bpm`, `pulse_confidence` and `pulse_kicks` (the drums settled the octave)
    come from `tempo.measure_pulse`; `named_bpm` and
    `bare_bpm` from its file and folder names (`tempo.name_tempi`); `user_bpm` is a
    correction (``traum fix``); `preferred` is its category's ``bpm_range``.
    """

    duration: float
    pulse_bpm: float | None = None
    pulse_confidence: float = 0.0
    pulse_kicks: bool = False
    named_bpm: float | None = None
    bare_bpm: float | None = None
    user_bpm: float | None = None
    preferred: tuple[float, float] = DEFAULT_BPM_RANGE

    @classmethod
    def from_name(cls, name: str, **evidence) -> LoopEvidence:
        """Evidence with the tempo tokens of `name` (a stem's path in its kit)."""
        named, bare = name_tempi(name)
        return cls(named_bpm=named, bare_bpm=bare, **evidence)

    @property
    def fixed(self) -> TempoChoice | None:
        """The choice no other evidence changes: the user's, else an explicit name token."""
        if self.user_bpm is not None:
            return TempoChoice(self.user_bpm, 1.0, "user")
        if self.named_bpm is not None:
            return TempoChoice(self.named_bpm, 0.95, "filename")
        return None

    @property
    def strength(self) -> float:
        """How much the pulse reading counts, 0..1."""
        if self.pulse_bpm is None:
            return 0.0
        return float(np.clip((self.pulse_confidence - _NOISE_PULSE)
                             / (_CLEAR_PULSE - _NOISE_PULSE), 0.0, 1.0))


@dataclass(frozen=True)
class KitTempoHints:
    """What a kit's name says: an explicit (``128 BPM``) or bare (``128``) tempo, and the
    tempo range of a genre word in it."""

    named_bpm: float | None = None
    bare_bpm: float | None = None
    genre_range: tuple[float, float] | None = None


def choose_loop_tempo(*, name: str, duration: float, audio_bpm: float,
                      audio_confidence: float, preferred: tuple[float, float],
                      kicks: bool = False) -> TempoChoice:
    """The tempo of one loop on its own evidence (`resolve_tempi` of a kit of one): its
    name, its length and its audio pulse (`kicks`: the drums settled its octave)."""
    evidence = LoopEvidence.from_name(name, duration=duration, pulse_bpm=audio_bpm,
                                      pulse_confidence=audio_confidence, pulse_kicks=kicks,
                                      preferred=preferred)
    return resolve_tempi([evidence])[0]


def resolve_tempi(loops: Sequence[LoopEvidence],
                  hints: KitTempoHints = KitTempoHints()) -> list[TempoChoice]:
    """The tempo of every loop of one kit, in order.

    The best-scoring tempo takes every loop it explains (whole bars, or a pulse in its
    family); the rest are scored again, up to three tempi. A loop with a user or explicit
    name tempo keeps it (and counts as strong evidence for the others). Loops no tempo
    explains keep their own pulse reading, with a low confidence and the reason.
    """
    low = min(LOOP_MIN_BPM, hints.genre_range[0]) if hints.genre_range else LOOP_MIN_BPM
    high = max(LOOP_MAX_BPM, hints.genre_range[1]) if hints.genre_range else LOOP_MAX_BPM
    groups, left = [], list(range(len(loops)))
    while left and len(groups) < _MAX_TEMPI:
        tempo = _best_tempo([loops[i] for i in left], hints, (low, high))
        members = [i for i in left if tempo is not None and _explains(loops[i], tempo)]
        if not members:
            break
        groups.append((tempo, members))
        left = [i for i in left if i not in members]
    choices: list[TempoChoice | None] = [loop.fixed for loop in loops]
    for tempo, members in groups:
        exact = _exact_tempo([loops[i] for i in members], tempo)
        reason = _mixed_reason(groups, members, len(loops))
        for i in members:
            if choices[i] is None:
                choices[i] = _member_choice(loops[i], exact, share=len(members) / len(loops),
                                            size=len(members), reason=reason)
    return [choice or _stray(loop, kit=len(loops) > 1) for loop, choice in zip(loops, choices)]


def mark_single(choice: TempoChoice) -> TempoChoice:
    """A lone loop's choice as the kit consensus leaves it: at most 0.5 confident, unless a
    name or the user gave it, with the reason that no other loop confirms it."""
    if choice.source in ("user", "filename") or choice.bpm is None:
        return choice
    reason = f"{choice.reason}; {_ONE_LOOP}" if choice.reason else _ONE_LOOP
    return TempoChoice(choice.bpm, min(choice.confidence, 0.5), choice.source, reason)


def _best_tempo(loops: list[LoopEvidence], hints: KitTempoHints,
                bounds: tuple[float, float]) -> float | None:
    candidates = _candidates(loops, hints, bounds)
    if candidates.size == 0:
        return None
    # The preferred range breaks ties between tempi an octave apart; once the drums of a
    # loop settled the octave there is none to break.
    tie_break = not any(loop.pulse_kicks and loop.strength > 0 for loop in loops)
    total = sum(_loop_scores(loop, candidates, tie_break=tie_break) for loop in loops)
    total = total + _hint_scores(hints, candidates, count=len(loops))
    if not np.any(total > 0):
        return None
    return float(candidates[int(np.argmax(total))])


def _candidates(loops: list[LoopEvidence], hints: KitTempoHints,
                bounds: tuple[float, float]) -> np.ndarray:
    """Every tempo some evidence points at: whole-bar lengths, pulse relations, names."""
    tempi = [hints.named_bpm, hints.bare_bpm]
    bars = np.arange(1, _MAX_BARS + 1)
    for loop in loops:
        if loop.duration > 0:
            tempi.extend(bars * BEATS_PER_BAR * 60.0 / loop.duration)
        if loop.strength > 0:
            tempi.extend(loop.pulse_bpm * ratio for ratio, _ in _RELATIONS)
        tempi.extend((loop.named_bpm, loop.bare_bpm, loop.user_bpm))
    values = np.array([t for t in tempi if t is not None], dtype=np.float64)
    return np.unique(np.round(values[(values >= bounds[0]) & (values <= bounds[1])], 3))


def _loop_scores(loop: LoopEvidence, tempi: np.ndarray, *, tie_break: bool) -> np.ndarray:
    """One loop's support for each tempo (see the module docstring); `tie_break` adds the
    category's preferred range."""
    if loop.user_bpm is not None:
        return _USER * _closeness(tempi, loop.user_bpm, LENGTH_TOLERANCE)
    if loop.named_bpm is not None:
        return _NAMED * _closeness(tempi, loop.named_bpm, LENGTH_TOLERANCE)
    length = _length_fit(loop.duration, tempi)
    score = length + _pulse_fit(loop, tempi)
    if loop.bare_bpm is not None:  # kit numbering looks alike: only with the length
        score += _BARE * _closeness(tempi, loop.bare_bpm, LENGTH_TOLERANCE) * (length > 0)
    in_range = (tempi >= loop.preferred[0]) & (tempi <= loop.preferred[1])
    return score + _PREFERRED * in_range * tie_break


def _hint_scores(hints: KitTempoHints, tempi: np.ndarray, *, count: int) -> np.ndarray:
    score = np.zeros_like(tempi)
    if hints.named_bpm is not None:
        score += max(3.0, _KIT_NAMED * count) * _closeness(tempi, hints.named_bpm,
                                                           LENGTH_TOLERANCE)
    if hints.bare_bpm is not None:
        score += max(1.0, _KIT_BARE * count) * _closeness(tempi, hints.bare_bpm,
                                                          LENGTH_TOLERANCE)
    if hints.genre_range is not None:
        low, high = hints.genre_range
        score += _GENRE * count * ((tempi >= low) & (tempi <= high))
    return score


def _length_fit(duration: float, tempi: np.ndarray) -> np.ndarray:
    """How well `duration` is a whole number of bars at each tempo (1 exact, 0 beyond
    `LENGTH_TOLERANCE`), weighted by how usual that bar count is."""
    if duration <= 0:
        return np.zeros_like(tempi)
    beats = duration * tempi / 60.0
    whole = np.round(beats / BEATS_PER_BAR)
    tolerance = np.minimum(LENGTH_TOLERANCE * BEATS_PER_BAR * np.maximum(whole, 1.0),
                           _LENGTH_TOLERANCE_BEATS)
    error = np.abs(beats - BEATS_PER_BAR * whole)
    weight = np.where(np.isin(whole, LOOP_BARS), _PREFERRED_BARS, _OTHER_BARS)
    weight = np.where((whole >= 1) & (whole <= _MAX_BARS), weight, 0.0)
    return weight * np.clip(1.0 - error / tolerance, 0.0, 1.0)


def _pulse_fit(loop: LoopEvidence, tempi: np.ndarray) -> np.ndarray:
    if loop.strength == 0:
        return np.zeros_like(tempi)
    fits = [(_SETTLED_OCTAVE if loop.pulse_kicks and ratio in (2.0, 0.5) else weight)
            * _closeness(tempi, loop.pulse_bpm / ratio, PULSE_TOLERANCE)
            for ratio, weight in _RELATIONS]
    return loop.strength * np.max(fits, axis=0)


def _closeness(tempi: np.ndarray | float, target: float, tolerance: float) -> np.ndarray:
    return np.clip(1.0 - np.abs(np.asarray(tempi) / target - 1.0) / tolerance, 0.0, 1.0)


def bars_at(duration: float, tempo: float, *, preferred: bool) -> int | None:
    """The whole-bar count `duration` has at `tempo` (within tolerance), else None."""
    score = _length_fit(duration, np.array([tempo]))[0]
    whole = int(round(duration * tempo / (BEATS_PER_BAR * 60.0)))
    if score <= 0 or (preferred and whole not in LOOP_BARS):
        return None
    return whole


def _relation(loop: LoopEvidence, tempo: float) -> float | None:
    """The ratio pulse / tempo among `_RELATIONS` the reading shows, if any."""
    if loop.strength == 0:
        return None
    for ratio, _ in _RELATIONS:
        if _closeness(tempo, loop.pulse_bpm / ratio, PULSE_TOLERANCE) > 0:
            return ratio
    return None


def _explains(loop: LoopEvidence, tempo: float) -> bool:
    """Whether `tempo` is this loop's: its fixed value, whole bars, or its pulse's family."""
    fixed = loop.fixed
    if fixed is not None:
        return bool(_closeness(tempo, fixed.bpm, 2 * LENGTH_TOLERANCE) > 0)
    if bars_at(loop.duration, tempo, preferred=False) is not None:
        return True
    # Off the bar grid, only a clear pulse ties a loop to a tempo: a drone's faint ripple
    # near one tempo must not pull it from the tempo its length fits.
    return loop.strength >= _CLEAR and _relation(loop, tempo) in _FAMILY


def _exact_tempo(members: list[LoopEvidence], tempo: float) -> float:
    """The group's tempo as precisely as its best evidence gives it: the user's or the
    names' value, else the median whole-bar length tempo, else the median pulse."""
    for kind in ("fixed", "length", "pulse"):
        values = [value for loop in members
                  if (value := _precise(loop, tempo, kind)) is not None]
        if values:
            return round(float(np.median(values)), 3)
    return round(tempo, 3)


def _precise(loop: LoopEvidence, tempo: float, kind: str) -> float | None:
    if kind == "fixed":
        fixed = loop.fixed
        return fixed.bpm if fixed is not None and _explains(loop, tempo) else None
    if kind == "length":
        bars = bars_at(loop.duration, tempo, preferred=True)
        return None if bars is None else bars * BEATS_PER_BAR * 60.0 / loop.duration
    ratio = _relation(loop, tempo)
    return None if ratio not in _FAMILY else loop.pulse_bpm / ratio


def _member_choice(loop: LoopEvidence, tempo: float, *, share: float, size: int,
                   reason: str) -> TempoChoice:
    """The choice for a loop that `tempo` explains, with how sure and, if weak, why."""
    bars = bars_at(loop.duration, tempo, preferred=True)
    if (bars is not None and loop.bare_bpm is not None
            and _closeness(tempo, loop.bare_bpm, 2 * LENGTH_TOLERANCE) > 0):
        return TempoChoice(loop.bare_bpm, 0.9, "filename", reason)
    relation = _relation(loop, tempo)
    agrees, clear = relation in _FAMILY, loop.strength >= _CLEAR
    notes = [reason] if reason else []
    if bars is None:
        unusual = bars_at(loop.duration, tempo, preferred=False)
        notes.append(f"{unusual} bars, an unusual count" if unusual
                     else "length fits no whole bar count")
    elif clear and not agrees:
        what = "a misread" if relation is not None else "unrelated"
        judge = "the kit and the length decide" if size >= 2 else "the length decides"
        notes.append(f"the pulse reads {loop.pulse_bpm:.1f} BPM ({what}); {judge}")
    if size >= 2:  # kit consensus: two or more loops agree
        confidence = (0.5 + 0.45 * share) * (0.8 if bars is None else 1.0)
        return TempoChoice(tempo, round(confidence, 3), "kit", "; ".join(notes))
    if bars is None:
        return TempoChoice(tempo, round(loop.pulse_confidence, 3), "audio",
                           "; ".join(notes + ["tempo from the audio alone"]))
    if agrees:
        confidence = max(0.6, min(1.0, 0.5 + loop.pulse_confidence))
    elif clear:
        confidence = 0.4
    else:
        fitting = sum(bars_at(loop.duration, t, preferred=True) is not None
                      for t in _preferred_tempi(loop.duration))
        confidence = 0.5 if fitting <= 1 else 0.3
        notes.append("no clear pulse: tempo from the length alone")
    return TempoChoice(tempo, confidence, "length", "; ".join(notes))


def _preferred_tempi(duration: float) -> list[float]:
    tempi = [bars * BEATS_PER_BAR * 60.0 / duration for bars in LOOP_BARS]
    return [t for t in tempi if LOOP_MIN_BPM <= t <= LOOP_MAX_BPM]


def _stray(loop: LoopEvidence, *, kit: bool) -> TempoChoice:
    """A loop no tempo explains: its own pulse reading, with little confidence."""
    where = "fits none of its kit's tempi; " if kit else ""
    if loop.pulse_bpm is None:
        return TempoChoice(None, 0.0, "none", f"{where}no pulse and no whole-bar length")
    if loop.strength == 0:
        return TempoChoice(round(loop.pulse_bpm, 3), round(loop.pulse_confidence, 3), "audio",
                           f"{where}no clear pulse and the length fits no whole bar count")
    return TempoChoice(round(loop.pulse_bpm, 3), round(min(loop.pulse_confidence, 0.3), 3),
                       "audio", f"{where}tempo from the audio alone")


def _mixed_reason(groups: list[tuple[float, list[int]]], members: list[int],
                  total: int) -> str:
    """Words for a kit that mixes tempi; empty when one tempo explains (nearly) all."""
    if len(members) == 1 and members is not groups[0][1]:
        return f"does not fit its kit's tempo ({groups[0][0]:.0f} BPM)"
    sizable = [(tempo, group) for tempo, group in groups if len(group) >= 2]
    if len(sizable) < 2 or not any(group is members for _, group in sizable):
        return ""
    listed = ", ".join(f"{tempo:.0f} BPM ({len(group)} of {total} loops)"
                       for tempo, group in sizable)
    return f"kit mixes tempi: {listed}"
