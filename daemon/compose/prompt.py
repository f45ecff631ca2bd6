"""Free text (English or German) -> `Intent`: tempo, genre, moods, key, length, seed.

Values with a unit are read by patterns (``138 bpm``, ``tempo 138``, ``3:30``, ``3 Minuten``,
``128 Takte``, ``in F minor``, ``F#m``, ``fis-moll``, ``seed 7``); words and phrases by the
lexicon (``düster`` -> mood dark, ``d&b`` -> drum_and_bass). Each pattern blanks what it
read, so a number is never read twice. Lines such as ``bpm: 140`` or ``key: f-moll``
override the free text; the rest of such a line (on a ``genre:`` line, its moods and tags)
still counts as free text. An ``export: dawproject, midi`` line chooses the render's outputs
(`read_exports`); an unknown name on it is ignored with a note.

Conflicts resolve predictably and are reported in `Intent.notes`: of two tempi, keys,
lengths or seeds the last one wins; of two genres the first one wins (later ones usually
describe influences: "techno with house chords"); an override line beats the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from daemon.compose.lexicon import Lexicon, Terms
from daemon.compose.plan import MAX_BPM, MIN_BPM
from daemon.config import EXPORTS
from daemon.keys import ACCIDENTALS, LETTERS, format_key
from daemon.text import transliterate

_NUMBER = r"(\d{1,6}(?:[.,]\d{1,3})?)"
_FREE = r"(?<![\w.,:#/])"  # a number that is not the tail of another number, time or ratio
_TEMPO = re.compile(rf"{_FREE}{_NUMBER}[\s-]*bpm\b|\b(?:bpm|tempo)\s*[:=]?\s*{_NUMBER}(?!\d)",
                    re.I)
_CLOCK = re.compile(r"(?<![\w:.])(\d{1,3}):([0-5]\d)(?![\w:])")
_UNITS = {"hours": 3600.0, "hour": 3600.0, "stunden": 3600.0, "stunde": 3600.0,
          "minutes": 60.0, "minute": 60.0, "minuten": 60.0, "mins": 60.0, "min": 60.0,
          "seconds": 1.0, "second": 1.0, "sekunden": 1.0, "secs": 1.0, "sec": 1.0, "sek": 1.0}
_BAR_UNITS = ("bars", "bar", "takte", "takten", "takt", "measures", "measure")
_DURATION = re.compile(rf"{_FREE}{_NUMBER}[\s-]*({'|'.join((*_UNITS, *_BAR_UNITS))})\b", re.I)
_JOINER = re.compile(r"\s*(?:,|and|und)?\s*", re.I)  # "3 min and 30 s" is one length
_SEED = re.compile(r"\bseed\s*[:=#]?\s*(\d{1,18})(?!\d)", re.I)
_BARE = re.compile(rf"{_FREE}(\d{{2,3}}(?:[.,]\d{{1,3}})?)(?![\w.,:%/])")
#: A bare number in this range is read as a tempo when the prompt gives none with a unit.
BARE_TEMPO_RANGE = (60.0, 200.0)

_KEY_EN = re.compile(r"(?<![\w#])([a-g])\s*(#|♯|♭|b(?=\s*-?\s*m)|-?\s*sharp|-?\s*flat)?"
                     r"\s*-?\s*(major|minor)\b", re.I)
#: German names: h = B, b = Bb; -is raises, -es / -s lowers ("fis-moll", "es-dur", "b-moll").
_GERMAN_PITCH = {**LETTERS, "b": 10, "h": 11}
_KEY_DE = re.compile(r"(?<![\w#])([a-h])(is|es|s|#|♯)?\s*-?\s*(dur|moll)\b", re.I)
#: Chord symbols, case-sensitive: "Fm", "F#m", "Bbm", "Cmaj", "Amin". A bare "Am" before a
#: capitalised word is the German preposition ("Am Abend"), not A minor.
_KEY_SYMBOL = re.compile(r"(?<![\w#♯♭])([A-G])(#|♯|b|♭)?(m|min|maj)(?![\w#])"
                         r"(?!(?<=\bAm)\s+[A-ZÄÖÜ][a-zäöüß])")

_OVERRIDE = re.compile(r"^[ \t]*(bpm|tempo|key|tonart|genre|stil|length|laenge|dauer|seed"
                       r"|exports?)"
                       r"[ \t]*[:=][ \t]*(.*?)[ \t]*$", re.I | re.M)
_OVERRIDE_FIELDS = {"bpm": "bpm", "tempo": "bpm", "key": "key", "tonart": "key",
                    "genre": "genre", "stil": "genre", "length": "length", "laenge": "length",
                    "dauer": "length", "seed": "seed", "export": "export", "exports": "export"}
#: Names an ``export:`` line may use ("none": only the WAV and the report, always written).
EXPORT_NAMES = ("wav", "json", *EXPORTS)


@dataclass(frozen=True)
class Intent:
    """What a prompt asks for. Anything it does not say is None (or empty).

    `key` is canonical (``"F minor"``). `tags` holds analyser tags ("acid") and stem
    categories ("pad", "vocal") the prompt names. `notes` reports contradictions, clamped
    values and ignored overrides, for the plan's notes.
    """

    text: str
    genre: str | None = None
    bpm: float | None = None
    key: str | None = None
    moods: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    length_seconds: float | None = None
    length_bars: int | None = None
    seed: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Found:
    """One value read from the prompt, with the text it came from (for notes)."""

    value: Any
    text: str


@dataclass
class _Reading:
    """Values read so far, per field, in text order; overrides kept apart."""

    found: dict[str, list[_Found]] = field(default_factory=dict)
    overrides: dict[str, list[_Found]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    line_terms: list[Terms] = field(default_factory=list)  # words on a `genre:` line

    def add(self, name: str, items: list[_Found], *, override: bool = False) -> None:
        (self.overrides if override else self.found).setdefault(name, []).extend(items)


def parse_prompt(text: str, lexicon: Lexicon) -> Intent:
    """Read what `text` asks for; never fails (unknown words are ignored).

    Parameters
    ----------
    text : str
        The prompt, any length; may hold ``key: value`` override lines (bpm, key, genre,
        length, seed, export; German: tempo, tonart, stil, länge, dauer).
    lexicon : Lexicon
        Words to genres, moods, tags and categories (from `load_rules`).

    Returns
    -------
    Intent
        Tempo clamped into the plan's 40..250 bpm; conflicts resolved as the module says.
    """
    reading = _Reading()
    free = _OVERRIDE.sub(lambda m: _read_override(m, lexicon, reading), transliterate(text))
    free = _read_values(free, reading)
    terms = lexicon.scan(free)
    reading.add("genre", [_Found(genre, genre) for t in terms for genre in sorted(t.genres)])
    terms = [*reading.line_terms, *terms]
    bpm = _resolve(reading, "bpm")
    length = _resolve(reading, "length")
    intent = Intent(
        text=_without_export_lines(text),
        genre=_resolve(reading, "genre", first=True),
        bpm=None if bpm is None else _clamp_tempo(bpm, reading.notes),
        key=_resolve(reading, "key"),
        moods=_unique(mood for t in terms for mood in sorted(t.moods)),
        tags=_unique(tag for t in terms for tag in (*sorted(t.tags), *sorted(t.categories))),
        length_seconds=length[1] if length and length[0] == "seconds" else None,
        length_bars=length[1] if length and length[0] == "bars" else None,
        seed=_resolve(reading, "seed"),
    )
    return _with_notes(intent, reading.notes)


def _with_notes(intent: Intent, notes: list[str]) -> Intent:
    if not intent.text:
        notes.insert(0, "empty prompt: genre, tempo, key and length are the defaults")
    elif not any((intent.genre, intent.bpm, intent.key, intent.moods, intent.tags,
                  intent.length_seconds, intent.length_bars, intent.seed is not None)):
        notes.insert(0, "no known word or value in the prompt: the defaults apply")
    return replace(intent, notes=tuple(notes))


def _read_values(text: str, reading: _Reading) -> str:
    """Read seed, length, tempo and key from free text; return the text with them blanked."""
    seeds, text = _take(_SEED, text)
    reading.add("seed", [_Found(int(m[1]), m[0].strip()) for m in seeds])
    lengths, text = _read_lengths(text, reading.notes)
    reading.add("length", lengths)
    tempi, text = _take(_TEMPO, text)
    reading.add("bpm", [_Found(_number(m[1] or m[2]), m[0].strip()) for m in tempi])
    keys, text = _read_keys(text)
    reading.add("key", keys)
    if not tempi and not reading.overrides.get("bpm"):
        low, high = BARE_TEMPO_RANGE
        bare, text = _take(_BARE, text, accept=lambda m: low <= _number(m[1]) <= high)
        reading.add("bpm", [_Found(_number(m[1]), m[1]) for m in bare])
        if bare:
            reading.notes.append(f"read the bare number {bare[-1][1]} as the tempo in bpm")
    return text


def _read_override(match: re.Match, lexicon: Lexicon, reading: _Reading) -> str:
    """Record one ``name: value`` line; return what of it still counts as free text."""
    name, value = _OVERRIDE_FIELDS[match[1].lower()], match[2]
    if name == "export":  # chooses outputs, not music: `read_exports` reads it for the render
        reading.notes += [f"export: unknown output '{word}' ignored (choose from "
                          f"{', '.join(EXPORT_NAMES)})" for word in _export_names(value)[1]]
        return ""
    if name == "genre":
        terms = lexicon.scan(value)
        reading.line_terms += terms  # the line's moods and tags still count
        genres = [genre for t in terms for genre in sorted(t.genres)]
        found, rest = ([_Found(genres[0], value)] if genres else []), ""
    else:
        found, rest = _OVERRIDE_READERS[name](value)
    if found:
        reading.add(name, found[:1], override=True)
    else:
        reading.notes.append(f"ignored the line '{match[0].strip()}': no {name} in it")
    return rest


def read_exports(text: str) -> tuple[str, ...] | None:
    """The outputs the prompt's last ``export:`` line names (known names only, in order), or
    None when it has no such line and the configured ``render.exports`` apply."""
    values = [match[2] for match in _OVERRIDE.finditer(transliterate(text))
              if _OVERRIDE_FIELDS[match[1].lower()] == "export"]
    return _export_names(values[-1])[0] if values else None


def _without_export_lines(text: str) -> str:
    """The prompt without its ``export:`` lines: choosing outputs must not change the music,
    and a seed not given is derived from the prompt's text."""
    return _OVERRIDE.sub(lambda match: "" if _OVERRIDE_FIELDS[match[1].lower()] == "export"
                         else match[0], text).strip()


def _export_names(value: str) -> tuple[tuple[str, ...], list[str]]:
    """The known and the unknown names of an ``export:`` line ("dawproject, midi png")."""
    words = [word.lower() for word in re.split(r"[\s,;]+", value) if word]
    known = tuple(dict.fromkeys(word for word in words if word in EXPORT_NAMES))
    return known, [word for word in words if word not in (*EXPORT_NAMES, "none")]


def _read_lengths(text: str, notes: list[str]) -> tuple[list[_Found], str]:
    """Clock times ("3:30") and numbers with a unit; "3 min 30 sec" is one length."""
    clocks, text = _take(_CLOCK, text)
    before = text
    durations, text = _take(_DURATION, text)
    # (start, end, unit size in seconds or 0 for bars, value, text) per length read
    spans: list[tuple[int, int, float, tuple[str, float], str]] = []
    for match in durations:
        size = _UNITS.get(match[2].lower(), 0.0)
        value = ("seconds", _number(match[1]) * size) if size else (
            "bars", round(_number(match[1])))
        last = spans[-1] if spans else None
        if (last and 0 < size < last[2]
                and _JOINER.fullmatch(before, last[1], match.start())):
            value = ("seconds", last[3][1] + value[1])
            spans[-1] = (last[0], match.end(), size, value, before[last[0]:match.end()])
        else:
            spans.append((match.start(), match.end(), size, value, match[0]))
    spans += [(m.start(), m.end(), 60.0, ("seconds", int(m[1]) * 60.0 + int(m[2])), m[0])
              for m in clocks]
    found = [_Found(value, shown.strip()) for *_, value, shown in sorted(spans)]
    notes.extend(f"ignored the length '{item.text}': it is zero" for item in found
                 if item.value[1] <= 0)
    return [item for item in found if item.value[1] > 0], text


def _read_keys(text: str) -> tuple[list[_Found], str]:
    found: list[tuple[int, _Found]] = []
    for pattern, german in ((_KEY_SYMBOL, False), (_KEY_DE, True), (_KEY_EN, False)):
        matches, text = _take(pattern, text)
        found += [(m.start(), _Found(_canonical_key(m, german=german), m[0].strip()))
                  for m in matches]
    return [item for _, item in sorted(found, key=lambda pair: pair[0])], text


def _canonical_key(match: re.Match, *, german: bool) -> str:
    letter, accidental, mode = match[1].lower(), re.sub(r"[\s-]", "", match[2] or ""), match[3]
    if german:
        pitch = _GERMAN_PITCH[letter] + {"is": 1, "#": 1, "♯": 1, "es": -1, "s": -1}.get(
            accidental.lower(), 0)
    else:
        pitch = LETTERS[letter] + ACCIDENTALS.get(accidental.lower(), 0)
    minor = mode.lower() in ("minor", "moll", "min") or mode == "m"
    return format_key(pitch, "minor" if minor else "major")


def _resolve(reading: _Reading, name: str, *, first: bool = False) -> Any:
    """The value of one field: last (or `first`) in the text, unless an override line says."""
    found = reading.found.get(name, [])
    chosen = (found[0] if first else found[-1]) if found else None
    distinct = list({item.value: item for item in found}.values())
    if len(distinct) > 1:
        shown = ", ".join(f"'{item.text}'" for item in distinct[:4])
        more = " ..." if len(distinct) > 4 else ""
        reading.notes.append(f"{name}: the prompt names {shown}{more}; the "
                             f"{'first' if first else 'last'} one, '{chosen.text}', wins")
    overrides = reading.overrides.get(name, [])
    if overrides:
        if chosen is not None and chosen.value != overrides[-1].value:
            reading.notes.append(f"{name}: the '{name}:' line ('{overrides[-1].text}') "
                                 f"overrides '{chosen.text}' in the text")
        chosen = overrides[-1]
    return chosen.value if chosen else None


def _clamp_tempo(bpm: float, notes: list[str]) -> float:
    clamped = min(max(bpm, MIN_BPM), MAX_BPM)
    if clamped != bpm:
        notes.append(f"tempo {bpm:g} bpm is outside {MIN_BPM:g}..{MAX_BPM:g}; "
                     f"clamped to {clamped:g} bpm")
    return clamped


def _take(pattern: re.Pattern, text: str, *,
          accept: Callable[[re.Match], bool] = lambda match: True) -> tuple[list[re.Match], str]:
    """Matches of `pattern` that `accept` keeps, and `text` with them blanked (same length)."""
    taken: list[re.Match] = []

    def blank(match: re.Match) -> str:
        if not accept(match):
            return match[0]
        taken.append(match)
        return " " * len(match[0])

    return taken, pattern.sub(blank, text)


def _number(text: str) -> float:
    return float(text.replace(",", "."))  # German decimal comma: "128,5 bpm"


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _read_override_number(pattern: re.Pattern, convert: Callable[[str], Any]) -> Callable:
    def read(value: str) -> tuple[list[_Found], str]:
        match = pattern.match(value)
        if not match:
            return [], value
        return [_Found(convert(match[1]), match[0].strip())], value[match.end():]

    return read


# How the value of each override line is read (a `genre:` line goes through the lexicon).
_OVERRIDE_READERS: dict[str, Callable[[str], tuple[list[_Found], str]]] = {
    "bpm": _read_override_number(re.compile(rf"\s*{_NUMBER}(?:\s*bpm)?(?!\w)", re.I),
                                 _number),
    "seed": _read_override_number(re.compile(r"\s*(\d{1,18})(?!\w)"), int),
    "length": lambda value: _read_lengths(value, []),
    "key": _read_keys,
}
