"""Ranked text search over stems: query words against category, tags, kit and file name.

Every query word is matched on its own, together with its lexicon expansions (German
"düster" -> "dark", "Fläche" -> "pad", supplied by the caller's `expand`). A word's weight is
its best hit: category 3.0, tag 2.5, kit-name token 1.5, file-name token 1.0, substring of a
file-name token 0.5; a hit through an expansion counts 0.9 of that. The score is

    (words matched + summed weight / (words * 3.0)) / (words + 1)

which lies in (0, 1], is 1.0 only when every word hits a category, and always ranks a stem
matching more query words above one matching fewer, whatever the fields. Text is folded and
tokenised by `daemon.text` (case-folded, umlauts written out: ä -> ae, ß -> ss; accents
dropped); every text is indexed both whole and split at camelCase and letter/digit
boundaries ("DarkPad120" -> darkpad120, dark, pad, 120), so either spelling finds it.

`TextIndex` tokenises the stems once and answers queries from posting lists; `rank_text`
builds one for a single query.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import numpy as np

from daemon.store.records import StemRecord
from daemon.text import tokenize

FIELD_WEIGHTS = {"category": 3.0, "tag": 2.5, "kit": 1.5, "file": 1.0}
SUBSTRING_WEIGHT = 0.5
EXPANSION_FACTOR = 0.9  # an expansion is a translation or synonym: nearly, not quite, the word
_MAX_WEIGHT = max(FIELD_WEIGHTS.values())
_MIN_SUBSTRING = 3  # shorter terms ("hi", "fx") would hit half of all file names
_MIN_TOKEN = 2  # one-letter tokens ("a" of "Kick A") would match everything
_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")
_QUERY_SPLIT = re.compile(r"[\s,;/+_]+")

Expander = Callable[[str], set[str]]  # word -> translations/synonyms (the lexicon)


@lru_cache(maxsize=65536)
def search_tokens(text: str) -> tuple[str, ...]:
    """The terms `text` is found by: its whole words, their camelCase and letter/digit parts
    and hyphen-joined compounds ("Hi-Hat_Closed" -> hi, hat, closed, hihat), two characters
    or longer.

    Cached: kit names, categories and tags repeat across thousands of stems.
    """
    tokens = (tokenize(text, split_camel=False, min_length=_MIN_TOKEN)
              + tokenize(text, min_length=_MIN_TOKEN))
    if "-" in text:
        tokens += tokenize(_HYPHEN.sub("", text), split_camel=False, min_length=_MIN_TOKEN)
    return tuple(dict.fromkeys(tokens))


def rank_text(query: str, stems: Sequence[StemRecord], *, expand: Expander | None = None,
              limit: int = 20) -> list[tuple[StemRecord, float]]:
    """Rank `stems` for `query`; see the module docstring for the score.

    Returns at most `limit` ``(stem, score)`` pairs, best first, ties broken by stem id;
    stems matching no query word are left out.
    """
    return TextIndex(stems).rank(query, expand=expand, limit=limit)


class TextIndex:
    """Posting lists (token -> row numbers) per field over a fixed list of stems."""

    def __init__(self, stems: Sequence[StemRecord]) -> None:
        self.stems = list(stems)
        postings: dict[str, defaultdict[str, list[int]]] = {
            field: defaultdict(list) for field in FIELD_WEIGHTS}
        for row, stem in enumerate(self.stems):
            for field, tokens in _stem_tokens(stem).items():
                for token in tokens:
                    postings[field][token].append(row)
        self._postings = {field: {token: np.array(rows, dtype=np.int64)
                                  for token, rows in table.items()}
                          for field, table in postings.items()}
        self._ids = np.array([stem.id for stem in self.stems], dtype=np.int64)
        # file-name vocabulary as one newline-joined string: substring search runs in C
        file_tokens = list(self._postings["file"])
        self._file_rows = [self._postings["file"][token] for token in file_tokens]
        self._file_vocab = "\n".join(file_tokens)
        self._file_starts = np.cumsum([0] + [len(token) + 1 for token in file_tokens[:-1]])

    def rank(self, query: str, *, expand: Expander | None = None,
             limit: int = 20) -> list[tuple[StemRecord, float]]:
        """Rank the indexed stems for `query` (see `rank_text`)."""
        words = query_terms(query, expand=expand)
        if not words or limit <= 0 or not self.stems:
            return []
        weights = np.stack([self._word_weights(terms) for terms in words])
        matched = (weights > 0).sum(axis=0)
        quality = weights.sum(axis=0) / (len(words) * _MAX_WEIGHT)
        scores = (matched + quality) / (len(words) + 1)
        candidates = np.flatnonzero(matched)
        if candidates.size > limit:  # keep everything tied with the limit-th score
            cutoff = -np.partition(-scores[candidates], limit - 1)[limit - 1]
            candidates = candidates[scores[candidates] >= cutoff]
        order = np.lexsort((self._ids[candidates], -scores[candidates]))[:limit]
        return [(self.stems[row], float(scores[row])) for row in candidates[order]]

    def _word_weights(self, terms: dict[str, float]) -> np.ndarray:
        """Best hit weight per stem for one query word, given its terms and their factors."""
        best = np.zeros(len(self.stems))
        for term, factor in terms.items():
            for field, weight in FIELD_WEIGHTS.items():
                _raise_to(best, self._postings[field].get(term), weight * factor)
            # numbers match whole tokens only: "120" must not hit stem "41203"
            if len(term) >= _MIN_SUBSTRING and not term.isdigit():
                for rows in self._substring_postings(term):
                    _raise_to(best, rows, SUBSTRING_WEIGHT * factor)
        return best

    def _substring_postings(self, term: str) -> Iterable[np.ndarray]:
        """Posting lists of every file-name token containing `term` (tokens hold no newline)."""
        starts = [match.start() for match in re.finditer(re.escape(term), self._file_vocab)]
        tokens = np.unique(np.searchsorted(self._file_starts, starts, side="right") - 1)
        return (self._file_rows[token] for token in tokens)


def query_terms(query: str, *, expand: Expander | None = None) -> list[dict[str, float]]:
    """Each query word's search terms with their weight factor (1.0 literal, 0.9 expansion)."""
    words = []
    for word in _QUERY_SPLIT.split(query.strip()):
        terms: dict[str, float] = {}
        for expansion in sorted(expand(word.casefold())) if expand and word else ():
            terms.update(dict.fromkeys(search_tokens(expansion), EXPANSION_FACTOR))
        terms.update(dict.fromkeys(search_tokens(word), 1.0))
        if terms:
            words.append(terms)
    return words


def _stem_tokens(stem: StemRecord) -> dict[str, tuple[str, ...]]:
    file_text = os.path.splitext(stem.rel_path.replace("\\", "/"))[0]  # folders count too
    return {"category": search_tokens(stem.category),
            "tag": tuple(token for tag in stem.tags for token in search_tokens(tag)),
            "kit": search_tokens(stem.kit), "file": search_tokens(file_text)}


def _raise_to(best: np.ndarray, rows: np.ndarray | None, weight: float) -> None:
    if rows is not None:
        best[rows] = np.maximum(best[rows], weight)
