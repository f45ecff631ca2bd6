"""Loop or one-shot at kit level: a stem its own audio took for a one-shot is a loop of its
kit when it lasts exactly a whole number of bars at the kit's tempo.

A chord loop of two off-beat stabs a bar, or of one held chord a bar, has no steady pulse
and decays between its chords, so on its own it reads as a one-shot and gets no tempo. Its
kit's drums and bass give the tempo; a length of 1, 2, 4, 8 or 16 bars at that tempo is the
evidence no single stem has. The length must be exact to `EXACT_S`: loops are exported on
the grid to the sample, while a one-shot trimmed where its decay fades lands that close to a
whole bar count by chance about once in 150. (Counting attacks does not tell them apart:
the onset count misses a sound at a file's first frame, and reads the beating partials of one
decaying chord as many.) A stem whose name or category said one-shot stays one. Pure
functions: numbers in, `TempoChoice`s out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from daemon.ingest.kit_tempo import bars_at
from daemon.ingest.tempo import BEATS_PER_BAR, TempoChoice

#: How exact a one-shot's length must be, in seconds, to make it a loop of its kit.
EXACT_S = 0.01
#: How sure a loop found this way is at most: its length fits, but its own pulse did not.
_MAX_CONFIDENCE = 0.6


def kit_tempo(choices: Sequence[TempoChoice]) -> TempoChoice | None:
    """The tempo most of a kit's loops took (the surest of them), or None without one;
    between groups of one size, the surer group."""
    groups: dict[float, list[TempoChoice]] = defaultdict(list)
    for choice in choices:
        if choice.bpm is not None:
            groups[choice.bpm].append(choice)
    if not groups:
        return None
    largest = max(groups.values(),
                  key=lambda group: (len(group), sum(c.confidence for c in group)))
    return max(largest, key=lambda choice: choice.confidence)


def loop_by_length(duration: float, source: str, tempo: TempoChoice) -> TempoChoice | None:
    """The tempo of a stem of `duration` seconds, a one-shot by its own analysis, when it is
    a loop of its kit at `tempo`; None when it stays a one-shot. Only a stem whose `source`
    (what decided its kind) is ``"audio"`` is weighed. The tempo is the one its length gives."""
    if source != "audio" or tempo.bpm is None:
        return None
    bars = bars_at(duration, tempo.bpm, preferred=True)
    if bars is None or abs(duration - bars * BEATS_PER_BAR * 60.0 / tempo.bpm) > EXACT_S:
        return None
    exact = bars * BEATS_PER_BAR * 60.0 / duration
    reason = (f"its audio read a one-shot; {bars} bar{'s' * (bars > 1)} "
              f"at its kit's {tempo.bpm:.1f} BPM")
    return TempoChoice(round(exact, 3), round(min(tempo.confidence, _MAX_CONFIDENCE), 3),
                       "kit", reason)
