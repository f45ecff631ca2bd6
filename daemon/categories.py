"""Category traits: ``rules/categories.toml`` → a validated `CategoryTable`.

The file is the one home of everything the engine knows about a stem category: the name
phrases that identify it (ingest), whether it carries a key, how it is stretched, staged,
ducked and patterned (render), what stands in for it and whether it changes between
sections (selection). Code asks the table; it never lists categories by trait itself.

The category *names* are a fixed vocabulary (`daemon.taxonomy.CATEGORIES`): the database,
the classifier's training corpus, the synthesiser and the genre rules all speak it, and the
genre and lexicon rules are validated against it without reading this file. So the file
must define exactly those categories; it owns their traits, not the list. Every defect is
reported at once in one `RuleError` naming the file and key (via `daemon.tomlcheck`).
Phrases are tokenised exactly like stem names (`daemon.text.tokenize`), so ``"Open Hat"``,
``"open-hat"`` and ``"OpenHat"`` are the same phrase.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from daemon.errors import RuleError
from daemon.taxonomy import CATEGORIES, PATTERN_INSTRUMENTS
from daemon.text import tokenize
from daemon.tomlcheck import Checker, read_toml

FILE_NAME = "categories.toml"
KIND_DEFAULTS = ("auto", "loop", "oneshot")
DEFAULT_BPM_RANGE = (100.0, 160.0)
LOUDNESS_RANGE = (-40.0, -6.0)  # LUFS a lane may be staged to before mastering
_TRAITS = ("tokens", "priority", "role", "tonal", "percussive", "sustained", "ducked", "varies",
           "loudness", "stand_ins", "built_from", "pattern", "kind", "bpm_range", "shape")
_SHAPE_KEYS = ("decays", "max_onsets", "min_low_ratio", "max_low_ratio")

Phrase = tuple[str, ...]


@dataclass(frozen=True)
class Shape:
    """How a one-shot of a category must sound to play its part, checked against the stored
    descriptors before it is chosen (`daemon.render.roles`).

    `decays`: a hit whose level falls over its length (a steady noise bed is none);
    `max_onsets`: at most this many attacks; `min_low_ratio`, `max_low_ratio`: bounds of its
    share of power below 150 Hz (a kick has a body, a hi-hat none). None: not checked.
    """

    decays: bool = False
    max_onsets: float | None = None
    min_low_ratio: float | None = None
    max_low_ratio: float | None = None


@dataclass(frozen=True)
class CategoryRule:
    """One category's name phrases and traits (see the header of ``categories.toml``)."""

    name: str
    phrases: tuple[Phrase, ...]
    priority: int  # tie-break between equally long name matches
    role: bool  # False: the name says how a sound is made (synth), not its part in a track
    tonal: bool  # carries a key: stored at ingest, matched and shifted at render
    percussive: bool  # stretched with crisp transients
    sustained: bool  # stretched smoothly; fades in over a bar when it enters outside a drop
    ducked: bool  # ducks under the kick when sidechaining is on
    varies: bool  # takes a fresh stem when a section type comes back ("Drop 2")
    loudness: float  # LUFS the lane is staged to, playing alone, before mastering
    stand_ins: tuple[str, ...]  # categories serving this one when it cannot be, best first
    built_from: tuple[str, ...]  # one-shot categories rebuilding it when nothing serves it
    pattern: str | None  # step-pattern instrument of its one-shots; None plays them as phrases
    kind: str  # "auto", or the kind assumed unless the name or a clear pulse says otherwise
    bpm_range: tuple[float, float]  # preferred loop tempi when the length rule is ambiguous
    shape: Shape = Shape()  # what its one-shots must sound like to play the part


@dataclass(frozen=True)
class CategoryTable(Mapping[str, CategoryRule]):
    """Every category's `CategoryRule` by name (in taxonomy order), plus the phrases that
    name a stem's kind (``"loop"``/``"oneshot"``)."""

    rules: Mapping[str, CategoryRule]
    kind_phrases: Mapping[str, tuple[Phrase, ...]]

    def __getitem__(self, name: str) -> CategoryRule:
        return self.rules[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def tonal(self) -> frozenset[str]:
        """Names of the categories that carry a key."""
        return frozenset(name for name, rule in self.rules.items() if rule.tonal)


def load_categories(rules_dir: Path) -> CategoryTable:
    """Read and validate ``rules_dir/categories.toml``.

    Raises
    ------
    RuleError
        The file is missing, not TOML, or breaks a rule; the message lists every defect
        as ``categories.toml: KEY: problem``.
    """
    path = Path(rules_dir) / FILE_NAME
    check = Checker(path.name)
    table = read_categories(check, read_toml(path, RuleError))
    check.raise_if_any(RuleError)
    return table


def read_categories(check: Checker, data: dict[str, Any]) -> CategoryTable:
    """Validate parsed ``categories.toml`` data, recording problems in `check` (a caller
    reading several rule files raises once for all of them)."""
    root = check.table(data, "", ("defaults", "kind", "categories"))
    defaults = check.table(root.get("defaults", {}), "defaults", ("bpm_range",))
    default_range = _bpm_range(check, defaults, "defaults", DEFAULT_BPM_RANGE)
    kind = check.table(root.get("kind", {}), "kind", ("loop", "oneshot"))
    kinds = {name: read_phrases(check, kind, "kind", name) for name in ("loop", "oneshot")}
    table = check.table(root.get("categories", {}), "categories", CATEGORIES)
    for missing in (name for name in CATEGORIES if name not in table):
        check.problem(f"categories.{missing}", "is required (the taxonomy is fixed)")
    rules = {name: _rule(check, name, table.get(name, {}), default_range)
             for name in CATEGORIES}
    return CategoryTable(rules=MappingProxyType(rules), kind_phrases=MappingProxyType(kinds))


def read_phrases(check: Checker, data: dict, key: str, name: str) -> tuple[Phrase, ...]:
    """The phrases listed under `key`.`name`, tokenised like stem names; a phrase without
    letters or digits is a problem."""
    phrases = []
    for text in check.strings(data, key, name):
        tokens = tokenize(text)
        if not tokens:
            check.problem(f"{key}.{name}", f"phrase {text!r} has no letters or digits")
        phrases.append(tokens)
    return tuple(phrase for phrase in phrases if phrase)


def _rule(check: Checker, name: str, data: Any, default_range: tuple[float, float]
          ) -> CategoryRule:
    key = f"categories.{name}"
    entry = check.table(data, key, _TRAITS)
    rule = CategoryRule(
        name=name, phrases=read_phrases(check, entry, key, "tokens"),
        priority=check.number(entry, key, "priority", 50, low=0, high=1000, integer=True),
        role=check.boolean(entry, key, "role", True),
        tonal=check.boolean(entry, key, "tonal"),
        percussive=check.boolean(entry, key, "percussive", False),
        sustained=check.boolean(entry, key, "sustained", False),
        ducked=check.boolean(entry, key, "ducked", False),
        varies=check.boolean(entry, key, "varies", False),
        loudness=check.number(entry, key, "loudness", low=LOUDNESS_RANGE[0],
                              high=LOUDNESS_RANGE[1]),
        stand_ins=_others(check, entry, name, "stand_ins"),
        built_from=_others(check, entry, name, "built_from"),
        pattern=(check.text(entry, key, "pattern", choices=PATTERN_INSTRUMENTS)
                 if "pattern" in entry else None),
        kind=check.text(entry, key, "kind", "auto", choices=KIND_DEFAULTS),
        bpm_range=_bpm_range(check, entry, key, default_range),
        shape=_shape(check, entry.get("shape", {}), f"{key}.shape"))
    if rule.percussive and rule.sustained:
        check.problem(key, "cannot be both percussive and sustained (they stretch differently)")
    return rule


def _shape(check: Checker, data: Any, key: str) -> Shape:
    body = check.table(data, key, _SHAPE_KEYS)

    def bound(name: str, high: float) -> float | None:
        return check.number(body, key, name, low=0.0, high=high) if name in body else None

    return Shape(decays=check.boolean(body, key, "decays", False),
                 max_onsets=bound("max_onsets", 1000.0),
                 min_low_ratio=bound("min_low_ratio", 1.0),
                 max_low_ratio=bound("max_low_ratio", 1.0))


def _others(check: Checker, entry: dict, own: str, trait: str) -> tuple[str, ...]:
    """The categories other than `own` listed under `trait`, each once."""
    key = f"categories.{own}"
    values = check.strings(entry, key, trait, ())
    for value in values:
        if value not in CATEGORIES or value == own:
            check.problem(f"{key}.{trait}", f"{value!r} is not another category")
    if len(set(values)) != len(values):
        check.problem(f"{key}.{trait}", "names a category twice")
    return tuple(value for value in values if value in CATEGORIES and value != own)


def _bpm_range(check: Checker, data: dict, key: str,
               default: tuple[float, float]) -> tuple[float, float]:
    value = data.get("bpm_range", list(default))
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and 40 <= value[0] < value[1] <= 250)
    if not ok:
        check.problem(f"{key}.bpm_range", f"must be [low, high] within 40..250 (got {value!r})")
        return DEFAULT_BPM_RANGE
    return float(value[0]), float(value[1])
