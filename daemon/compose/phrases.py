"""Track length in phrases: a requested length met to the nearest 8-bar phrase, the genre's
template fitted to it and its phrases shared among the sections.

Dance music is built in 8- and 16-bar phrases and DJs mix on them, so a requested length is
rounded to whole 8-bar phrases (a note gives the difference in seconds) and every section of
a fitted track is a whole number of them. Without a requested length the template's own
lengths (multiples of 4 bars, validated) are kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from daemon.compose.genres import SectionRule
from daemon.compose.plan import BEATS_PER_BAR
from daemon.compose.prompt import Intent

#: The unit of a requested length and of every section's share of it.
PHRASE_BARS = 8
#: Longest run of bars without a change in the lanes (a part of a longer section).
MAX_PART_BARS = 16
#: Requested lengths are capped here (a plan renders in memory).
MAX_LENGTH_SECONDS = 30 * 60.0


def target_bars(intent: Intent, bpm: float, notes: list[str]) -> int | None:
    """The requested length in bars: whole 8-bar phrases (at least one), nearest to the
    request (halves round up), capped at `MAX_LENGTH_SECONDS`. None: no length requested.

    Appends a note with the bars chosen and how far they are from the request in seconds.
    """
    seconds_per_bar = BEATS_PER_BAR * 60.0 / bpm
    if intent.length_bars is not None:
        wanted, asked = float(intent.length_bars), f"{intent.length_bars} bars"
    elif intent.length_seconds is not None:
        wanted, asked = intent.length_seconds / seconds_per_bar, _clock(intent.length_seconds)
    else:
        return None
    phrases = max(1, math.floor(wanted / PHRASE_BARS + 0.5))
    longest = int(MAX_LENGTH_SECONDS // (seconds_per_bar * PHRASE_BARS))
    if phrases > longest:
        notes.append(f"length capped at {MAX_LENGTH_SECONDS / 60:g} minutes "
                     f"({longest * PHRASE_BARS} bars)")
        return longest * PHRASE_BARS
    bars = phrases * PHRASE_BARS
    difference = (bars - wanted) * seconds_per_bar
    notes.append(f"length {asked} met to the nearest {PHRASE_BARS}-bar phrase: {bars} bars, "
                 f"{_clock(bars * seconds_per_bar)} ({difference:+.1f} s)")
    return bars


def fit_template(sections: Sequence[SectionRule], target: int | None, *,
                 minimum: Mapping[str, int]) -> list[SectionRule]:
    """Leave sections out while the track is too short for them, the most expendable first.

    A section needs ``minimum[role]`` bars, else one phrase. Too short: the sections' needs
    exceed `target`, or, while optional sections are left, the template's shortest form
    would shrink below half, squeezing every section into a stub. Optional sections go
    first, then builds, grooves and breakdowns, then the intro, then the outro; the first
    drop stays. Later sections go before earlier ones.
    """
    chosen = list(sections)

    def too_long() -> bool:
        needed = sum(minimum.get(s.role, PHRASE_BARS) for s in chosen)
        squeezed = any(s.optional for s in chosen) and sum(min(s.bars) for s in chosen) > \
            2 * target
        return needed > target or squeezed

    while target is not None and len(chosen) > 1 and too_long():
        first_drop = next((i for i, s in enumerate(chosen) if s.role == "drop"), None)
        del chosen[max(range(len(chosen)), key=lambda i: (
            chosen[i].optional, i != first_drop, chosen[i].role not in ("intro", "outro"),
            chosen[i].role == "intro", i))]
    return chosen


def share_phrases(bars: Sequence[int], target: int, *, minimum: Sequence[int]) -> list[int]:
    """Share the ``target // 8`` phrases of `target` bars among sections in proportion to
    `bars` (largest remainder), each getting at least ``minimum[i]`` bars' worth.

    The minimums must fit in `target` (`fit_template` sees to it).
    """
    phrases = target // PHRASE_BARS
    least = [max(1, -(-low // PHRASE_BARS)) for low in minimum]
    quotas = [phrases * b / sum(bars) for b in bars]
    shares = [max(low, int(q)) for low, q in zip(least, quotas)]
    by_remainder = sorted(range(len(bars)), key=lambda i: (int(quotas[i]) - quotas[i], i))
    for step in range(phrases - sum(shares)):
        shares[by_remainder[step % len(bars)]] += 1
    while sum(shares) > phrases:  # minimums overshot: take from the longest sections
        spare = [i for i in range(len(bars)) if shares[i] > least[i]]
        shares[max(spare, key=lambda i: (shares[i], -i))] -= 1
    return [PHRASE_BARS * share for share in shares]


def part_sizes(bars: int) -> list[int]:
    """Parts of at most 16 bars in 8-bar blocks where possible: 24 -> 16 + 8,
    20 -> 8 + 12 (only the last part holds a 4-bar phrase beyond the blocks); 0 -> none."""
    count = -(-bars // MAX_PART_BARS)
    if count <= 1:
        return [bars] if bars else []
    half_phrases, extra = divmod(bars, PHRASE_BARS // 2)
    blocks, odd = divmod(half_phrases, 2)
    base, more = divmod(blocks, count)
    sizes = [PHRASE_BARS * (base + (i < more)) for i in range(count)]
    sizes[-1] += PHRASE_BARS // 2 * odd + extra
    return sizes


def _clock(seconds: float) -> str:
    """``"3:56.1"``: minutes and seconds to a tenth (``"4:00"`` when whole)."""
    minutes, rest = divmod(round(seconds, 1), 60)
    return f"{int(minutes)}:{rest:02.0f}" if rest == int(rest) else f"{int(minutes)}:{rest:04.1f}"
