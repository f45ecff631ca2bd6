"""A kit's profile: what the renderer knows about a kit before it looks at single stems.

`profile_kit` reads it from the kit's stems and names (pure: records and rules in, a frozen
`KitProfile` out):

* its genre and genre family, and its style words, from the kit's and its folders' names
  through the genre synonyms and the lexicon ("Warehouse Techno", "DnB", "Deep House",
  "Boom Bap", "Lo-Fi", German words too); a kit whose names carry no genre word gets its
  family later, from its tempo and sound (`daemon.kits.family`);
* its tempo, as the consensus of its loops (half and double time agree);
* its keys, as the renderer hears its tonal stems (labels are hypotheses: the keys come from
  `heard`, and `keys_corrected` counts the labels the ear overrode);
* its sound, as the mean classifier feature vector per category.

A profile round-trips through JSON (`to_dict`, `from_dict`) for the store.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from daemon.compose.rules import Rules
from daemon.store.records import StemRecord
from daemon.text import tokenize

#: Bump when a profile's content or computation changes: stored profiles are then recomputed.
#: 2: sound vectors stored as base64 float64 (`to_dict`).
PROFILE_VERSION = 2
TEMPO_AGREEMENT = 0.02  # loops within 2 % of a reading share the kit's tempo
TEMPO_READINGS = (1.0, 0.5, 2.0)  # a half- or double-time loop agrees with the kit's tempo
#: Rule files a profile depends on (names, genres, tonal categories).
RULE_FILES = ("lexicon.toml", "categories.toml")


@dataclass(frozen=True)
class KitProfile:
    """One kit as the renderer sees it (see the module docstring).

    `family_source` says where the family came from (``"name"``: the kit's name,
    ``"folder"``: a folder's, ``"tempo and sound"`` or ``"tempo"``: inferred, ``"none"``)
    and `family_confidence` how sure that is (0..1). `keys` are (key, tonal stems) pairs,
    most frequent first.
    """

    kit: str
    genre: str | None
    family: str | None
    family_source: str
    family_confidence: float
    styles: tuple[str, ...]
    tempo: float | None
    tempo_confidence: float
    keys: tuple[tuple[str, int], ...]
    keys_corrected: int
    categories: Mapping[str, int]
    sound: Mapping[str, tuple[float, ...]] = field(repr=False)
    stems: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The profile as stored, in JSON types; each sound vector as base64 float64, since
        parsing tens of thousands of profiles' numbers as JSON text took most of a library's
        read (four times the decoding)."""
        data = asdict(self)
        data["sound"] = {name: base64.b64encode(np.asarray(vector, dtype="<f8").tobytes())
                         .decode("ascii") for name, vector in self.sound.items()}
        return {"version": PROFILE_VERSION, **data}

    def summary(self) -> dict[str, Any]:
        """The profile without its sound vectors (for `traum kits` and `traum status`)."""
        data = asdict(self)
        data.pop("sound")
        data["keys"] = [{"key": key, "stems": count} for key, count in self.keys]
        return data


def from_dict(data: Mapping[str, Any]) -> KitProfile | None:
    """The profile stored as `data`, or None when it was written by another profile version
    (or is damaged): it is then computed again."""
    if data.get("version") != PROFILE_VERSION:
        return None
    try:
        return KitProfile(
            kit=data["kit"], genre=data["genre"], family=data["family"],
            family_source=data["family_source"],
            family_confidence=float(data["family_confidence"]), styles=tuple(data["styles"]),
            tempo=data["tempo"], tempo_confidence=float(data["tempo_confidence"]),
            keys=tuple((key, int(count)) for key, count in data["keys"]),
            keys_corrected=int(data["keys_corrected"]), categories=dict(data["categories"]),
            sound={name: tuple(np.frombuffer(base64.b64decode(vector, validate=True),
                                             dtype="<f8").tolist())
                   for name, vector in data["sound"].items()},
            stems=int(data["stems"]))
    except (KeyError, TypeError, ValueError):
        return None


def rules_hash(rules_dir: Path) -> str:
    """A digest of every rule file a profile depends on, and of `PROFILE_VERSION`: when it
    changes, stored profiles are stale."""
    digest = hashlib.sha256(f"profile-v{PROFILE_VERSION}".encode())
    rules_dir = Path(rules_dir)
    for path in [*sorted((rules_dir / "genres").glob("*.toml")),
                 *(rules_dir / name for name in RULE_FILES)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:16]


def profile_kit(kit: str, stems: Sequence[StemRecord], rules: Rules, *,
                heard: Mapping[int, str | None]) -> KitProfile:
    """The profile of `kit` from its `stems`, its names and the genre rules; `heard` is stem
    id → the key the renderer hears a tonal stem in (stems not in it keep their label)."""
    folders = sorted({part for stem in stems
                      for part in PurePosixPath(stem.rel_path).parent.parts})
    genre, source = named_genre(kit, folders, rules)
    tempo, agreement = tempo_consensus([stem.bpm for stem in stems
                                        if stem.kind == "loop" and stem.bpm])
    keys = Counter(key for stem in stems if (key := heard.get(stem.id, stem.key)))
    return KitProfile(
        kit=kit, genre=genre, family=rules.genres[genre].family if genre else None,
        family_source=source, family_confidence=1.0 if source == "name" else
        0.8 if source == "folder" else 0.0,
        styles=style_words([kit, *folders], rules), tempo=tempo, tempo_confidence=agreement,
        keys=tuple(keys.most_common()),
        keys_corrected=sum(1 for stem in stems if stem.id in heard and heard[stem.id]
                           and heard[stem.id] != stem.key),
        categories=dict(sorted(Counter(stem.category for stem in stems).items())),
        sound=mean_sound(stems), stems=len(stems))


def named_genre(kit: str, folders: Sequence[str], rules: Rules) -> tuple[str | None, str]:
    """The genre the kit's name (else its folders' names) names most often, and where it
    was found: ``"name"``, ``"folder"`` or ``"none"``."""
    for names, source in (([kit], "name"), (folders, "folder")):
        found = Counter(genre for name in names for terms in _scan(name, rules)
                        for genre in sorted(terms.genres))
        if found:
            return found.most_common(1)[0][0], source
    return None, "none"


def style_words(names: Sequence[str], rules: Rules) -> tuple[str, ...]:
    """The moods and tags the names carry ("Berlin Industrial Techno" → industrial)."""
    words: dict[str, None] = {}
    for name in names:
        for terms in _scan(name, rules):
            words.update(dict.fromkeys(sorted(terms.moods | terms.tags)))
    return tuple(words)


def tempo_consensus(bpms: Sequence[float]) -> tuple[float | None, float]:
    """The tempo most loops agree on (half and double time agree too), as the median of the
    loops that read it directly, and the share of loops that agree; (None, 0) without
    loops."""
    if not bpms:
        return None, 0.0

    def agrees(bpm: float, tempo: float) -> bool:
        return any(abs(bpm * reading / tempo - 1.0) <= TEMPO_AGREEMENT
                   for reading in TEMPO_READINGS)

    support = {bpm: (sum(agrees(other, bpm) for other in bpms),
                     sum(abs(other / bpm - 1.0) <= TEMPO_AGREEMENT for other in bpms))
               for bpm in bpms}
    anchor = max(bpms, key=lambda bpm: (*support[bpm], -bpm))
    direct = [bpm for bpm in bpms if abs(bpm / anchor - 1.0) <= TEMPO_AGREEMENT]
    return round(float(np.median(direct)), 2), round(support[anchor][0] / len(bpms), 3)


def mean_sound(stems: Sequence[StemRecord]) -> dict[str, tuple[float, ...]]:
    """Mean classifier feature vector per category (vectors of the most common length)."""
    vectors = [stem.features for stem in stems if stem.features is not None]
    if not vectors:
        return {}
    width = Counter(vector.size for vector in vectors).most_common(1)[0][0]
    grouped: dict[str, list[np.ndarray]] = defaultdict(list)
    for stem in stems:
        if stem.features is not None and stem.features.size == width:
            grouped[stem.category].append(np.asarray(stem.features, dtype=np.float64))
    return {category: tuple(round(float(v), 5) for v in np.mean(group, axis=0))
            for category, group in sorted(grouped.items())}


def _scan(name: str, rules: Rules) -> list:
    """Lexicon terms in a name, read as typed and with camel case split ("DeepHouse")."""
    split = " ".join(tokenize(name))
    return rules.lexicon.scan(name) + (rules.lexicon.scan(split) if split != name.lower()
                                       else [])
