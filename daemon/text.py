"""Text folding and tokenising: the one way every module compares words.

The lexicon (prompt words), the ingest name rules (category, kind and tag phrases against
file and folder names), text search and the renderer (file-name words of a stem) all fold
and split text here, so a word means the same everywhere: ``"Fläche"``, ``"FLÄCHE"`` and
``"flaeche"`` are one token, and so are ``"Straße"``, ``"STRASSE"`` and ``"STRAẞE"``.

Folding writes German umlauts out (ä → ae, ß and ẞ → ss), drops every other accent
(é → e), applies Unicode compatibility forms (ﬁ → fi, full-width → ASCII) and case-folds.
Tokens are runs of letters and digits of the folded text (any script: a Japanese kit name
is a token, not a gap).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

#: Umlauts written out; a capital one is spelt by `_capital` from its neighbour.
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ẞ": "SS"})
#: The lexicon's second spelling: umlauts as plain vowels ("düster" → "duster").
_PLAIN = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "Ä": "A", "Ö": "O", "Ü": "U"})
_CAPITAL_UMLAUT = re.compile(r"([ÄÖÜ])(?=(.?))", re.S)
_CAPITAL_BASE = {"Ä": "A", "Ö": "O", "Ü": "U"}
# Word boundaries inside a name: "darkKick", "HHClosed" (an acronym before a word),
# "Kick01" and "128bpm". Applied to transliterated text, so ASCII classes suffice for case.
_INNER_BOUNDARY = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])"
                             r"|(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
# The same split for plain ASCII names in one pass (three times faster; most names are ASCII):
# an acronym before a word, a word, an acronym, a number.
_ASCII_NAME_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def transliterate(text: str, *, plain: bool = False) -> str:
    """`text` with umlauts written out and other accents dropped; case is kept.

    A capital umlaut follows its neighbour's case, so a name keeps its word boundaries:
    ``"Äpfel"`` → ``"Aepfel"``, ``"FLÄCHE"`` → ``"FLAECHE"`` (not ``"FLAeCHE"``).

    Parameters
    ----------
    text : str
        Any text.
    plain : bool
        Write umlauts as plain vowels instead (``"düster"`` → ``"duster"``), the spelling
        of a keyboard without umlauts.
    """
    if text.isascii():  # the common case: names and prompts without accents
        return text
    text = unicodedata.normalize("NFC", text)
    if plain:
        text = text.translate(_PLAIN)
    text = _CAPITAL_UMLAUT.sub(_capital, text).translate(_UMLAUTS)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def fold(text: str, *, plain: bool = False) -> str:
    """`text` transliterated and case-folded: ``"Düster FLÄCHE Straße"`` →
    ``"duester flaeche strasse"``; with `plain`, umlauts become plain vowels."""
    if text.isascii():
        return text.lower()  # equal to casefold() on ASCII, and much faster
    return transliterate(text, plain=plain).casefold()


def tokenize(text: str, *, split_camel: bool = True, min_length: int = 1,
             joiners: str = "") -> tuple[str, ...]:
    """Folded word tokens of `text`, in order.

    ``tokenize("DarkKick_01-Fläche.wav")`` → ``("dark", "kick", "01", "flaeche", "wav")``.

    Parameters
    ----------
    text : str
        A file name, phrase or prompt.
    split_camel : bool
        Also split inside words at case changes and between letters and digits
        (``"HHClosed128"`` → hh, closed, 128): how sample packs write names. The lexicon
        reads prompts without it.
    min_length : int
        Shorter tokens are left out (text search ignores one-letter tokens).
    joiners : str
        Characters that belong to words (the lexicon keeps ``"&"``: ``"d&b"``).
    """
    if split_camel and not joiners and text.isascii():
        tokens = [word.lower() for word in _ASCII_NAME_WORD.findall(text)]
    else:
        if split_camel:
            text = _INNER_BOUNDARY.sub(" ", transliterate(text))
        tokens = _word_pattern(joiners).findall(fold(text))
    if min_length > 1:
        return tuple(token for token in tokens if len(token) >= min_length)
    return tuple(tokens)


@lru_cache(maxsize=8)
def _word_pattern(joiners: str) -> re.Pattern[str]:
    if not joiners:
        return re.compile(r"[^\W_]+")
    return re.compile(rf"(?:[^\W_]|[{re.escape(joiners)}])+")


def _capital(match: re.Match[str]) -> str:
    following = match[2]
    return _CAPITAL_BASE[match[1]] + ("e" if following.islower() else "E")
