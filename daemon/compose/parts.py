"""Sections into parts: runs of at most 16 bars with one set of lanes, DJ edges kept to drums.

A section longer than 16 bars is split into parts ("Drop 1 A", "Drop 1 B") that differ by the
section's variation steps. A club genre's intro opens, and its outro closes, with a DJ edge: a
part playing only the edge's drum lanes, which nothing later changes. Then `finish_parts`
puts a riser lane before each drop, makes neighbouring parts differ, and makes every later
drop differ from the earlier ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.compose.genres import SectionRule
from daemon.compose.phrases import part_sizes


@dataclass
class Part:
    """A stretch of at most 16 bars with one set of lanes (mutable while arranging).

    `variation` counts the earlier sections of the same role (a second drop plays 1);
    `index` is the part's place in its section; an `edge` part is a DJ edge, left alone.
    """

    name: str
    role: str
    bars: int
    energy: float
    lanes: list[str]
    steps: tuple[str, ...]
    variation: int = 0
    index: int = 0
    edge: bool = False


def split_section(section: SectionRule, bars: int, lanes: list[str], energy: float, *,
                  variation: int, head: int = 0, tail: int = 0,
                  edge_lanes: Sequence[str] = ()) -> list[Part]:
    """Parts of one section of `bars` bars: a `head`-bar and a `tail`-bar DJ edge playing
    `edge_lanes` (0: none), and between them the body in parts of at most 16 bars, the n-th
    with the first n of the section's variation steps applied to `lanes` (shifted where the
    last would play the DJ outro's lanes: the outro's steps often thin it to drums)."""
    body = part_sizes(bars - head - tail)
    offset = _tail_offset(lanes, section.variation, len(body), edge_lanes) if tail else 0
    sizes = [*([head] if head else []), *body, *([tail] if tail else [])]
    edges = [bool(head) and i == 0 or bool(tail) and i == len(sizes) - 1
             for i in range(len(sizes))]
    parts = []
    for index, (size, edge) in enumerate(zip(sizes, edges)):
        name = section.name if len(sizes) == 1 else f"{section.name} {_letter(index)}"
        played = list(edge_lanes) if edge else _vary(lanes, section.variation,
                                                     index - bool(head) + offset)
        parts.append(Part(name, section.role, size, energy, played, section.variation,
                          variation, index, edge))
    return parts


def finish_parts(parts: list[Part]) -> None:
    """Risers before drops, later drops unlike earlier ones, a change between neighbours."""
    _add_risers(parts)
    _contrast_drops(parts)
    _ensure_changes(parts)


def _letter(index: int) -> str:
    """Spreadsheet-style part labels: A..Z, AA, AB..."""
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def _tail_offset(lanes: list[str], steps: Sequence[str], count: int,
                 edge_lanes: Sequence[str]) -> int:
    """The first shift of the body's steps whose last part plays other lanes than the DJ
    outro after it (0 when there is no body, or no shift helps)."""
    return next((offset for offset in range(len(steps) + 2)
                 if count and set(_vary(lanes, steps, count - 1 + offset)) != set(edge_lanes)),
                0)


def _vary(lanes: list[str], steps: Sequence[str], index: int) -> list[str]:
    """Lanes of body part `index`: its first `index` steps applied; past the last step, the
    last step toggles, so neighbouring parts still differ."""
    applied = index if index <= len(steps) else len(steps) - (index - len(steps)) % 2
    for step in steps[:applied]:
        lanes = _apply(lanes, step)
    return lanes


def _apply(lanes: list[str], step: str) -> list[str]:
    category = step[1:]
    if step[0] == "+":
        return lanes if category in lanes else [*lanes, category]
    return [lane for lane in lanes if lane != category]


def _add_risers(parts: list[Part]) -> None:
    """An fx lane (the renderer's riser) in the last part before each drop, unless that part
    is a DJ edge (drums only)."""
    for before, part in zip(parts, parts[1:]):
        if part.role == "drop" and before.role != "drop" and not before.edge \
                and "fx" not in before.lanes:
            before.lanes = [*before.lanes, "fx"]


def _ensure_changes(parts: list[Part]) -> None:
    """Where two neighbours play the same lanes, vary the second, which may make it equal to
    the next, varied in turn; where the second is a DJ edge, vary the first, unlike both of
    its neighbours."""
    for index in range(1, len(parts)):
        before, part = parts[index - 1], parts[index]
        if set(part.lanes) != set(before.lanes):
            continue
        if not part.edge:
            _vary_part(part, avoid=[set(before.lanes)])
            continue
        _vary_part(before, avoid=[set(part.lanes)]
                   + ([set(parts[index - 2].lanes)] if index >= 2 else []))


def _contrast_drops(parts: list[Part]) -> None:
    """The first part of a later drop plays other lanes than the first part of every earlier
    one (optional lanes can make two templates' drops alike)."""
    earlier: list[set[str]] = []
    for index, part in enumerate(parts):
        if part.role == "drop" and part.index == 0:
            if set(part.lanes) in earlier:
                _vary_part(part, avoid=[*earlier, set(parts[index - 1].lanes)])
            earlier.append(set(part.lanes))


def _vary_part(part: Part, *, avoid: list[set[str]]) -> None:
    """Apply the first of the part's section steps, or of their undoing (its part may have
    taken them all already), whose lanes are none of `avoid`.

    Removing fx is never tried: that lane may carry the riser before a drop.
    """
    undo = tuple({"+": "-", "-": "+"}[step[0]] + step[1:] for step in part.steps)
    for step in (*part.steps, *undo):
        varied = _apply(part.lanes, step)
        if step != "-fx" and varied and set(varied) not in avoid:
            part.lanes = varied
            return
