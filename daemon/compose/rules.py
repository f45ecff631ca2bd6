"""The arranger's editable rules: ``rules/genres/*.toml`` and ``rules/lexicon.toml``.

`load_rules` reads and validates them into frozen dataclasses. Every defect in every file
(unknown keys, bad ranges, a section with no bars, a mood the lexicon does not define...) is
collected and raised as one `RuleError` whose lines name file and key path. A producer adds a
genre by dropping one TOML file into ``rules/genres/``: its name is the file name and its
``synonyms`` join the lexicon. One genre file is read by `daemon.compose.genres`; other
files in ``rules/`` belong to other modules. Both schemas are documented in the files
themselves (``lexicon.toml``, ``genres/techno.toml``).

Words are compared normalised (see `daemon.compose.lexicon`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from daemon.compose.checks import NAME, members, mood_effect, word_list
from daemon.compose.genres import GenreRules, read_genre
from daemon.compose.lexicon import Lexicon, MoodEffect, Terms, phrase_key
from daemon.errors import RuleError
from daemon.taxonomy import CATEGORIES, TAGS
from daemon.tomlcheck import Checker, read_toml


@dataclass(frozen=True)
class Rules:
    genres: Mapping[str, GenreRules]
    lexicon: Lexicon


def load_rules(rules_dir: Path) -> Rules:
    """Read and validate ``genres/*.toml`` and ``lexicon.toml`` under `rules_dir`.

    Raises `RuleError` listing every problem found, each naming its file and key path.
    """
    rules_dir = Path(rules_dir)
    lexicon_path = rules_dir / "lexicon.toml"
    lexicon_check = Checker(lexicon_path)
    vocabulary = _read_vocabulary(lexicon_check, read_toml(lexicon_path, RuleError))
    files = sorted((rules_dir / "genres").glob("*.toml"))
    if not files:
        raise RuleError(f"{rules_dir / 'genres'}: no genre files (*.toml) found")
    checks, genres = [], {}
    for path in files:
        check = Checker(path)
        genres[path.stem] = read_genre(check, read_toml(path, RuleError), path.stem,
                                        vocabulary.moods)
        checks.append(check)
    words = _genreword_list(checks, genres)
    _check_families(checks, genres)
    fallback = lexicon_check.text(vocabulary.fallback, "fallback", "genre",
                                  choices=tuple(genres))
    problems = lexicon_check.problems + [p for check in checks for p in check.problems]
    if problems:
        raise RuleError("\n".join(problems))
    return Rules(genres=MappingProxyType(genres),
                 lexicon=_build_lexicon(vocabulary, words, fallback))


# -- lexicon.toml -----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Vocabulary:
    words: dict[tuple[str, str], tuple[str, ...]]  # (kind, term) -> words; kind as in Terms
    moods: dict[str, MoodEffect]
    tag_categories: dict[str, tuple[str, ...]]
    fallback: dict[str, Any]


def _read_vocabulary(check: Checker, data: dict[str, Any]) -> _Vocabulary:
    root = check.table(data, "", ("fallback", "moods", "tags", "categories"))
    words: dict[tuple[str, str], tuple[str, ...]] = {}
    moods: dict[str, MoodEffect] = {}
    for name, raw in _named_tables(check, root, "moods").items():
        body = check.table(raw, f"moods.{name}", ("words", "tags", "categories", "energy"))
        words["moods", name] = word_list(check, body, f"moods.{name}")
        moods[name] = mood_effect(check, body, f"moods.{name}")
    tag_categories: dict[str, tuple[str, ...]] = {}
    for name, raw in _named_tables(check, root, "tags", TAGS).items():
        body = check.table(raw, f"tags.{name}", ("words", "categories"))
        words["tags", name] = word_list(check, body, f"tags.{name}")
        tag_categories[name] = members(check, body, f"tags.{name}", "categories", CATEGORIES,
                                        required=True)
    for name in check.table(root.get("categories", {}), "categories", CATEGORIES):
        words["categories", name] = word_list(check, root["categories"], "categories", name)
    _check_duplicates(check, words)
    return _Vocabulary(words, moods, tag_categories,
                       check.table(root.get("fallback", {}), "fallback", ("genre",)))


def _named_tables(check: Checker, root: dict, key: str,
                  allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """Sub-tables of ``root[key]``: named from `allowed`, or any lower-case name if None."""
    tables = root.get(key, {})
    if allowed is not None:
        return check.table(tables, key, allowed)
    tables = check.table(tables, key, tables if isinstance(tables, dict) else ())
    for name in tables:
        if not NAME.fullmatch(name):
            check.problem(f"{key}.{name}", "names must be lower-case words (a-z, 0-9, _)")
    return tables


def _check_duplicates(check: Checker, words: Mapping[tuple[str, str], Iterable[str]]) -> None:
    """A word may mean a mood and a tag, but not two moods (or two tags, two categories)."""
    seen: dict[tuple[str, tuple[str, ...]], str] = {}
    for (kind, term), values in words.items():
        for word in values:
            previous = seen.setdefault((kind, phrase_key(word)), term)
            if previous != term:
                check.problem(f"{kind}.{term}", f"{word!r} is already a word of {previous!r}")


def _genreword_list(checks: list[Checker], genres: Mapping[str, GenreRules]) -> dict:
    """Genre synonyms (and names) as lexicon words; one phrase may name only one genre."""
    owner: dict[tuple[str, ...], str] = {}
    for check, genre in zip(checks, genres.values()):
        for word in (genre.name.replace("_", " "), *genre.synonyms):
            previous = owner.setdefault(phrase_key(word), genre.name)
            if previous != genre.name:
                check.problem("synonyms", f"{word!r} already names genre {previous!r}")
    return {("genres", name): (name.replace("_", " "), *genre.synonyms)
            for name, genre in genres.items()}


def _check_families(checks: list[Checker], genres: Mapping[str, GenreRules]) -> None:
    """A family is named after its head genre, whose own family is itself, so one hop from any
    genre reaches it (deep_house -> house, never deep_house -> house -> techno)."""
    for check, genre in zip(checks, genres.values()):
        head = genres.get(genre.family)
        if head is None:
            check.problem("family", f"{genre.family!r} is not a genre (one of "
                                    f"{', '.join(sorted(genres))})")
        elif head.family != head.name:
            check.problem("family", f"{genre.family!r} belongs to family {head.family!r}; "
                                    f"name the family's own genre")


def _build_lexicon(vocabulary: _Vocabulary, genre_words: dict, fallback: str) -> Lexicon:
    entries: dict[tuple[str, ...], dict[str, set[str]]] = {}
    plain: dict[tuple[str, ...], dict[str, set[str]]] = {}
    for (kind, term), words in {**vocabulary.words, **genre_words}.items():
        for word in words:
            for table, tokens in ((entries, phrase_key(word)),
                                  (plain, phrase_key(word, plain=True))):
                table.setdefault(tokens, {}).setdefault(kind, set()).add(term)

    def freeze(table: dict) -> Mapping[tuple[str, ...], Terms]:
        return MappingProxyType({key: Terms(**{k: frozenset(v) for k, v in kinds.items()})
                                 for key, kinds in table.items()})

    return Lexicon(entries=freeze(entries), plain=freeze(plain),
                   moods=MappingProxyType(vocabulary.moods),
                   tag_categories=MappingProxyType(vocabulary.tag_categories),
                   fallback_genre=fallback, longest=max(len(key) for key in entries))
