"""Analysis rules: ``rules/categories.toml`` and ``rules/tags.toml`` → validated data.

Both files are producer-editable; every problem is reported at once in one `RuleError`
naming the file and key (via `daemon.tomlcheck`). Category phrases and traits are read by
`daemon.categories`; this module adds what only ingest needs: tag phrases and audio tag
rules, and the matching of phrases against stem names. Phrases and names are tokenised the
same way (`daemon.text.tokenize`), so ``"Open Hat"``, ``"open-hat"`` and ``"OpenHat"`` are the
same phrase.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.categories import FILE_NAME as CATEGORIES_FILE
from daemon.categories import CategoryTable, Phrase, read_categories, read_phrases
from daemon.errors import RuleError
from daemon.ingest.features import DESCRIPTOR_NAMES
from daemon.taxonomy import CATEGORIES
from daemon.text import tokenize
from daemon.tomlcheck import Checker, read_toml


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
    categories: CategoryTable  # name phrases, kind phrases and traits
    tag_phrases: dict[str, tuple[Phrase, ...]]  # tag → phrases
    tag_rules: tuple[TagRule, ...]


def load_analysis_rules(rules_dir: Path) -> AnalysisRules:
    """Read and validate ``categories.toml`` and ``tags.toml`` from `rules_dir`.

    Raises
    ------
    RuleError
        Either file is missing, not TOML or breaks a rule; one message lists every defect.
    """
    rules_dir = Path(rules_dir)
    categories_path, tags_path = rules_dir / CATEGORIES_FILE, rules_dir / "tags.toml"
    check_categories = Checker(categories_path.name)
    check_tags = Checker(tags_path.name)
    categories = read_categories(check_categories, read_toml(categories_path, RuleError))
    tag_phrases, tag_rules = _tags(check_tags, read_toml(tags_path, RuleError))
    check_categories.problems.extend(check_tags.problems)
    check_categories.raise_if_any(RuleError)
    return AnalysisRules(categories=categories, tag_phrases=tag_phrases, tag_rules=tag_rules)


def _tags(check: Checker, data: dict) -> tuple[dict[str, tuple[Phrase, ...]], tuple]:
    root = check.table(data, "", ("tokens", "audio"))
    tokens = root.get("tokens", {})
    if not isinstance(tokens, dict):
        check.problem("tokens", "must be a table of tag = [phrases]")
        tokens = {}
    phrases = {tag: read_phrases(check, tokens, "tokens", tag) for tag in tokens}
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
        if name not in CATEGORIES:
            check.problem(key, f"unknown category {name!r}")
    return TagRule(tag=check.text(entry, key, "tag"),
                   descriptor=check.text(entry, key, "descriptor", choices=DESCRIPTOR_NAMES),
                   above=above, below=below, categories=categories, exclude=exclude)


def name_parts(name: str) -> list[tuple[str, ...]]:
    """Tokens of each part of a stem's relative path: the file name (without its
    extension) first, then its folders from the innermost outwards."""
    parts = [part for part in re.split(r"[\\/]", name) if part]
    if parts:
        parts[-1] = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", parts[-1])
    return [tokenize(part) for part in reversed(parts)]


def longest_match(tokens: Sequence[str], phrases: tuple[Phrase, ...]) -> int:
    """Length of the longest phrase found as consecutive `tokens` (0 when none).

    A token also matches without a plural ``s``/``es`` ("kicks", "basses")."""
    forms = [{token, token[:-1] if token.endswith("s") else token,
              token[:-2] if token.endswith("es") else token} for token in tokens]
    anywhere = set().union(*forms)  # most phrases start with a word the name lacks
    best = 0
    for phrase in phrases:
        size = len(phrase)
        if size <= best or phrase[0] not in anywhere:
            continue
        for start in range(len(tokens) - size + 1):
            if all(word in forms[start + offset] for offset, word in enumerate(phrase)):
                best = size
                break
    return best


def prefix_match(tokens: Sequence[str], phrases: tuple[Phrase, ...]) -> bool:
    """True when a token begins with a one-word phrase of four or more letters.

    The fallback for run-together folder names ("bassloops", "stringsnpads",
    "synthwave"); short words are exempt so "hat" does not match "hatred".
    """
    words = [phrase[0] for phrase in phrases if len(phrase) == 1 and len(phrase[0]) >= 4]
    return any(token.startswith(word) for token in tokens for word in words)
