"""Validators shared by the readers of ``rules/lexicon.toml`` and ``rules/genres/*.toml``.

Each records problems on a `Checker` (file and key path) instead of raising, and returns only
the valid part of what it read, so a reader can carry on and report every defect at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from daemon.compose.lexicon import MoodEffect, phrase_key
from daemon.taxonomy import CATEGORIES, TAGS
from daemon.tomlcheck import Checker

#: Genre, mood and lane names.
NAME = re.compile(r"[a-z][a-z0-9_]*")


def word_list(check: Checker, data: dict, key: str, name: str = "words", *,
          required: bool = True) -> tuple[str, ...]:
    """A list of lexicon words; a word without letters or digits is a problem."""
    values = check.strings(data, key, name) if required else check.strings(data, key, name, ())
    for word in values:
        if not phrase_key(word):
            check.problem(join(key, name), f"{word!r} has no letters or digits")
    return tuple(word for word in values if phrase_key(word))


def members(check: Checker, data: dict, key: str, name: str, vocabulary: Iterable[str], *,
            required: bool = False) -> tuple[str, ...]:
    """A list of strings that must all come from `vocabulary`."""
    known = tuple(vocabulary)
    values = check.strings(data, key, name) if required else check.strings(data, key, name, ())
    for value in values:
        if value not in known:
            check.problem(join(key, name),
                          f"unknown value {value!r} (known: {', '.join(known)})")
    return tuple(value for value in values if value in known)


def mood_effect(check: Checker, body: dict, key: str) -> MoodEffect:
    """A mood's tags, categories and energy shift (at most ±0.3)."""
    return MoodEffect(tags=members(check, body, key, "tags", TAGS),
                      categories=members(check, body, key, "categories", CATEGORIES),
                      energy=check.number(body, key, "energy", 0.0, low=-0.3, high=0.3))


def join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
