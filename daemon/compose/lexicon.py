"""The lexicon: English and German words → genres, moods, tags and categories.

Words are compared as `phrase_key`: folded and tokenised by `daemon.text` (case-folded,
umlauts written out: ä -> ae, ß -> ss; other accents dropped), with "&" kept inside words
("d&b") and words not split at case changes (prompts are typed, not file names). Each
lexicon word is also stored with umlauts as plain vowels, so "düster", "duester" and
"duster" are one word. Loading and validation of ``rules/lexicon.toml`` live in
`daemon.compose.rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from daemon.text import fold, tokenize

#: German adjective endings and the English plural, longest first: "düsterer" -> "duester".
_SUFFIXES = ("en", "er", "es", "em", "e", "s")
_MIN_STEM = 3  # shorter stems ("us" from "user") match too much by accident


def phrase_key(text: str, *, plain: bool = False) -> tuple[str, ...]:
    """The lexicon's tokens of a word, phrase or prompt: ``"Drum & Bass, düster!"`` ->
    drum, &, bass, duester; with `plain`, umlauts become plain vowels (duster)."""
    return tokenize(fold(text, plain=plain), split_camel=False, joiners="&")


@dataclass(frozen=True)
class Terms:
    """What a word or phrase means: genre names, mood names, analyser tags, categories."""

    genres: frozenset[str] = frozenset()
    moods: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.genres or self.moods or self.tags or self.categories)


@dataclass(frozen=True)
class MoodEffect:
    """How a mood colours an arrangement: `tags` on lanes of `categories`, an energy shift."""

    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    energy: float = 0.0


@dataclass(frozen=True)
class Lexicon:
    """Words (English and German) -> `Terms`, plus the default effect of every mood.

    `entries` is keyed by normalised token tuples, `plain` by the same words with umlauts
    as plain vowels; `tag_categories` says which lanes a tag named in a prompt applies to.
    """

    entries: Mapping[tuple[str, ...], Terms]
    plain: Mapping[tuple[str, ...], Terms]
    moods: Mapping[str, MoodEffect]
    tag_categories: Mapping[str, tuple[str, ...]]
    fallback_genre: str
    longest: int = 1  # tokens in the longest phrase

    def lookup(self, word: str) -> Terms:
        """Terms of one word or phrase ("düsterer", "drum & bass"); empty if unknown."""
        tokens = phrase_key(word)
        if len(tokens) == 1:
            return self._word(tokens[0])
        return self._exact(tokens) or Terms()

    def scan(self, text: str) -> list[Terms]:
        """Terms of every known word or phrase in `text`, in order; longest phrases win."""
        tokens, found, start = phrase_key(text), [], 0
        while start < len(tokens):
            size, terms = self._match_at(tokens, start)
            if terms:
                found.append(terms)
            start += size
        return found

    def terms_for(self, word: str) -> set[str]:
        """Every term `word` stands for: genres, moods and their tags, tags, categories.

        ``terms_for("düster") == {"dark"}``, ``terms_for("Fläche") == {"pad"}``.
        """
        terms: set[str] = set()
        for found in self.scan(word):
            terms |= found.genres | found.moods | found.tags | found.categories
            for mood in found.moods:
                terms.update(self.moods[mood].tags)
        return terms

    def _match_at(self, tokens: tuple[str, ...], start: int) -> tuple[int, Terms]:
        for size in range(min(self.longest, len(tokens) - start), 1, -1):
            terms = self._exact(tokens[start:start + size])
            if terms:
                return size, terms
        return 1, self._word(tokens[start])

    def _word(self, token: str) -> Terms:
        """Exact match first, then with an inflection ending removed (or swapped for -e)."""
        for stem in _stems(token):
            terms = self._exact((stem,))
            if terms:
                return terms
        return Terms()

    def _exact(self, key: tuple[str, ...]) -> Terms | None:
        return self.entries.get(key) or self.plain.get(key)


def _stems(token: str) -> Iterable[str]:
    yield token
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= _MIN_STEM:
            stem = token[:-len(suffix)]
            yield stem
            yield stem + "e"  # "dunklen" -> "dunkl" -> "dunkle"
