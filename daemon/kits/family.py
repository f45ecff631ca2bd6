"""Genre families of kits whose names say nothing, and the library of profiles a render reads.

A kit named ``Kit10`` or ``Audio Export 3`` carries no genre word. Its family is inferred from
what it sounds like: its tempo must lie in the family's tempo band (the union of its genres'
ranges), and among those families the one whose named kits it is closest to wins, by tempo
and by sound (the per-category mean feature vectors, standardised over the library). With no
named kit of a family to compare with, the tempo band alone speaks. The confidence is the
winning family's share of the votes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from daemon.compose.genres import GenreRules
from daemon.kits.profile import KitProfile

TEMPO_SCALE_BPM = 4.0  # tempo closeness falls to 1/e at this distance
TEMPO_READINGS = (1.0, 0.5, 2.0)
#: With no named kit to compare with, a family's tempo band alone votes this much.
BAND_ONLY_WEIGHT = 0.5


@dataclass(frozen=True)
class KitLibrary:
    """Every complete kit's profile, families resolved, and each genre's family."""

    profiles: tuple[KitProfile, ...]
    families: Mapping[str, str]  # genre → family

    def profile(self, kit: str) -> KitProfile | None:
        return next((p for p in self.profiles if p.kit == kit), None)

    def family_of(self, genre: str) -> str:
        return self.families.get(genre, genre)


def build_library(profiles: Sequence[KitProfile],
                  genres: Mapping[str, GenreRules]) -> KitLibrary:
    """The library of `profiles`, with the family of every kit that names none inferred."""
    named = [profile for profile in profiles if profile.family]
    scale = _sound_scale(profiles)
    resolved = tuple(profile if profile.family else
                     infer_family(profile, named, genres, scale=scale) for profile in profiles)
    return KitLibrary(resolved, {name: genre.family for name, genre in genres.items()})


def infer_family(profile: KitProfile, named: Sequence[KitProfile],
                 genres: Mapping[str, GenreRules], *,
                 scale: tuple[np.ndarray, np.ndarray] | None = None) -> KitProfile:
    """`profile` with a family inferred from its tempo and sound (see the module docstring).

    Each family in whose tempo band the kit lies collects, from each of its named kits, the
    product of their tempo closeness and sound similarity (a kernel vote: a family of many
    close kits is the likelier); a family without named kits gets a vote from its genres'
    default tempo only, at `BAND_ONLY_WEIGHT`. The confidence is the winner's share of all
    votes.
    """
    bands = family_bands(genres)
    candidates = [family for family, (low, high) in bands.items()
                  if profile.tempo is None or low <= profile.tempo <= high] or list(bands)
    votes = {}
    for family in candidates:
        kits = [kit for kit in named if kit.family == family]
        if kits:
            votes[family] = sum(_tempo_closeness(profile.tempo, kit.tempo)
                                * sound_similarity(profile, kit, scale=scale) for kit in kits)
        else:
            default = np.mean([g.bpm_default for g in genres.values() if g.family == family])
            votes[family] = BAND_ONLY_WEIGHT * _tempo_closeness(profile.tempo, float(default))
    family = min(votes, key=lambda name: (-votes[name], name))
    total = sum(votes.values())
    compared = any(kit.family == family for kit in named)
    return replace(profile, family=family,
                   family_source="tempo and sound" if compared else "tempo",
                   family_confidence=round(votes[family] / total, 3) if total else 0.0)


def family_bands(genres: Mapping[str, GenreRules]) -> dict[str, tuple[float, float]]:
    """Family → the tempo range its genres cover."""
    bands: dict[str, tuple[float, float]] = {}
    for genre in genres.values():
        low, high = bands.get(genre.family, (genre.bpm_min, genre.bpm_max))
        bands[genre.family] = (min(low, genre.bpm_min), max(high, genre.bpm_max))
    return bands


def sound_similarity(first: KitProfile, second: KitProfile, *,
                     scale: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """0..1: mean cosine of the two kits' standardised sound vectors over the categories
    both have; 0.5 when they share none (nothing to compare)."""
    shared = sorted(set(first.sound) & set(second.sound))
    cosines = []
    for category in shared:
        a, b = (np.asarray(kit.sound[category], dtype=np.float64) for kit in (first, second))
        if a.shape != b.shape:
            continue
        if scale is not None and scale[0].shape == a.shape:
            a, b = (a - scale[0]) / scale[1], (b - scale[0]) / scale[1]
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        if norm > 0:
            cosines.append(float(a @ b) / norm)
    return (1.0 + float(np.mean(cosines))) / 2.0 if cosines else 0.5


def _sound_scale(profiles: Sequence[KitProfile]) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and spread per dimension of every kit's category vectors: each dimension of the
    classifier's vector has its own unit, so they are compared standardised."""
    vectors = [np.asarray(v, dtype=np.float64) for p in profiles for v in p.sound.values()]
    if len(vectors) < 2:
        return None
    width = max({v.size for v in vectors}, key=lambda size: sum(v.size == size for v in vectors))
    stacked = np.stack([v for v in vectors if v.size == width])
    return stacked.mean(axis=0), stacked.std(axis=0) + 1e-6


def _tempo_closeness(tempo: float | None, other: float | None) -> float:
    if tempo is None or other is None:
        return 0.5
    distance = min(abs(tempo * reading - other) for reading in TEMPO_READINGS)
    return float(np.exp(-distance / TEMPO_SCALE_BPM))
