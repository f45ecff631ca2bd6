"""Analysis rules: ``rules/categories.toml`` and ``rules/tags.toml`` → validated data.

Both files are producer-editable; every problem is reported at once in one `RuleError`
naming the file and key (via `daemon.tomlcheck`). Phrases in the files are tokenised
exactly like stem names (`tokenize`), so ``"Open Hat"``, ``"open-hat"`` and ``"OpenHat"``
are the same phrase.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import RuleError
from daemon.ingest.features import DESCRIPTOR_NAMES
from daemon.taxonomy import CATEGORIES
from daemon.tomlcheck import Checker, read_toml

#: The fixed category taxonomy; categories.toml must define exactly these.
TAXONOMY = CATEGORIES
KIND_DEFAULTS = ("auto", "loop", "oneshot")
_TRANSLITERATE = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe",
                                "Ü": "Ue", "ß": "ss"})

Phrase = tuple[str, ...]


@dataclass(frozen=True)
class CategoryRule:
    """Name phrases for one category, its tie-break `priority`, and analysis hints."""

    name: str
    phrases: tuple[Phrase, ...]
    priority: int
    tonal: bool  # False: drums and noise store no key
    kind: str  # "auto", or the kind assumed unless the name or a clear pulse says otherwise
    bpm_range: tuple[float, float]  # preferred loop tempi when the length rule is ambiguous


@dataclass(frozen=True)
class TagRule:
    """Give `tag` when `descriptor` is above `above` and/or below `below`.

    Applies only to `categories` when given, never to those in `exclude`.
    """

    tag: str
    descriptor: str
    above: float | None
    below: float | None
    categories: tuple[str, ...]
    exclude: tuple[str, ...]


@dataclass(frozen=True)
class AnalysisRules:
    categories: dict[str, CategoryRule]
    kind_phrases: dict[str, tuple[Phrase, ...]]  # "loop"/"oneshot" → phrases
    tag_phrases: dict[str, tuple[Phrase, ...]]  # tag → phrases
    tag_rules: tuple[TagRule, ...]


def tokenize(text: str) -> list[str]:
    """Lower-case word and number tokens of a name; German umlauts transliterated.

    ``"DarkKick_01-Fläche.wav"`` → ``["dark", "kick", "01", "flaeche", "wav"]``.
    """
    text = unicodedata.normalize("NFC", text).translate(_TRANSLITERATE)
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # camelCase
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)  # HHClosed → HH Closed
    text = re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", text)  # Kick01, 128bpm
    return re.findall(r"[a-z0-9]+", text.lower())


def load_analysis_rules(rules_dir: Path) -> AnalysisRules:
    """Read and validate ``categories.toml`` and ``tags.toml`` from `rules_dir`."""
    rules_dir = Path(rules_dir)
    categories_path, tags_path = rules_dir / "categories.toml", rules_dir / "tags.toml"
    check_categories = Checker(categories_path.name)
    check_tags = Checker(tags_path.name)
    categories, kinds = _categories(check_categories, read_toml(categories_path, RuleError))
    tag_phrases, tag_rules = _tags(check_tags, read_toml(tags_path, RuleError))
    check_categories.problems.extend(check_tags.problems)
    check_categories.raise_if_any(RuleError)
    return AnalysisRules(categories=categories, kind_phrases=kinds, tag_phrases=tag_phrases,
                         tag_rules=tag_rules)


def _phrases(check: Checker, data: dict, key: str, name: str) -> tuple[Phrase, ...]:
    phrases = []
    for text in check.strings(data, key, name):
        tokens = tuple(tokenize(text))
        if not tokens:
            check.problem(f"{key}.{name}", f"phrase {text!r} has no letters or digits")
        phrases.append(tokens)
    return tuple(phrase for phrase in phrases if phrase)


def _bpm_range(check: Checker, data: dict, key: str, default: Any) -> tuple[float, float]:
    value = data.get("bpm_range", default)
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
          and 40 <= value[0] < value[1] <= 250)
    if not ok:
        check.problem(f"{key}.bpm_range", f"must be [low, high] within 40..250 (got {value!r})")
        return 100.0, 160.0
    return float(value[0]), float(value[1])


def _categories(check: Checker, data: dict) -> tuple[dict[str, CategoryRule], dict]:
    root = check.table(data, "", ("defaults", "kind", "categories"))
    defaults = check.table(root.get("defaults", {}), "defaults", ("bpm_range",))
    default_range = _bpm_range(check, defaults, "defaults", [100.0, 160.0])
    kind = check.table(root.get("kind", {}), "kind", ("loop", "oneshot"))
    kinds = {name: _phrases(check, kind, "kind", name) for name in ("loop", "oneshot")}
    table = check.table(root.get("categories", {}), "categories", TAXONOMY)
    for missing in (name for name in TAXONOMY if name not in table):
        check.problem(f"categories.{missing}", "is required (the taxonomy is fixed)")
    rules = {}
    for name in TAXONOMY:
        key = f"categories.{name}"
        entry = check.table(table.get(name, {}), key,
                            ("tokens", "priority", "tonal", "kind", "bpm_range"))
        rules[name] = CategoryRule(
            name=name, phrases=_phrases(check, entry, key, "tokens"),
            priority=check.number(entry, key, "priority", 50, low=0, high=1000, integer=True),
            tonal=check.boolean(entry, key, "tonal"),
            kind=check.text(entry, key, "kind", "auto", choices=KIND_DEFAULTS),
            bpm_range=_bpm_range(check, entry, key, list(default_range)))
    return rules, kinds


def _tags(check: Checker, data: dict) -> tuple[dict[str, tuple[Phrase, ...]], tuple]:
    root = check.table(data, "", ("tokens", "audio"))
    tokens = root.get("tokens", {})
    if not isinstance(tokens, dict):
        check.problem("tokens", "must be a table of tag = [phrases]")
        tokens = {}
    phrases = {tag: _phrases(check, tokens, "tokens", tag) for tag in tokens}
    audio = root.get("audio", [])
    if not isinstance(audio, list):
        check.problem("audio", "must be an array of tables ([[audio]])")
        audio = []
    return phrases, tuple(_tag_rule(check, entry, f"audio[{index}]")
                          for index, entry in enumerate(audio))


def _tag_rule(check: Checker, entry: Any, key: str) -> TagRule:
    entry = check.table(entry, key, ("tag", "descriptor", "above", "below", "categories",
                                     "exclude"))
    above = check.number(entry, key, "above", None) if "above" in entry else None
    below = check.number(entry, key, "below", None) if "below" in entry else None
    if above is None and below is None:
        check.problem(key, "needs 'above' and/or 'below'")
    categories = check.strings(entry, key, "categories", [])
    exclude = check.strings(entry, key, "exclude", [])
    for name in (*categories, *exclude):
        if name not in TAXONOMY:
            check.problem(key, f"unknown category {name!r}")
    return TagRule(tag=check.text(entry, key, "tag"),
                   descriptor=check.text(entry, key, "descriptor", choices=DESCRIPTOR_NAMES),
                   above=above, below=below, categories=categories, exclude=exclude)


def name_parts(name: str) -> list[list[str]]:
    """Tokens of each part of a stem's relative path: the file name (without its
    extension) first, then its folders from the innermost outwards."""
    parts = [part for part in re.split(r"[\\/]", name) if part]
    if parts:
        parts[-1] = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", parts[-1])
    return [tokenize(part) for part in reversed(parts)]


def longest_match(tokens: list[str], phrases: tuple[Phrase, ...]) -> int:
    """Length of the longest phrase found as consecutive `tokens` (0 when none).

    A token also matches without a plural ``s``/``es`` ("kicks", "basses")."""
    forms = [{token, token[:-1] if token.endswith("s") else token,
              token[:-2] if token.endswith("es") else token} for token in tokens]
    best = 0
    for phrase in phrases:
        size = len(phrase)
        if size <= best:
            continue
        for start in range(len(tokens) - size + 1):
            if all(word in forms[start + offset] for offset, word in enumerate(phrase)):
                best = size
                break
    return best


def prefix_match(tokens: list[str], phrases: tuple[Phrase, ...]) -> bool:
    """True when a token begins with a one-word phrase of four or more letters.

    The fallback for run-together folder names ("bassloops", "stringsnpads",
    "synthwave"); short words are exempt so "hat" does not match "hatred".
    """
    words = [phrase[0] for phrase in phrases if len(phrase) == 1 and len(phrase[0]) >= 4]
    return any(token.startswith(word) for token in tokens for word in words)
