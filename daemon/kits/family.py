"""Genre families of kits whose names say nothing, and the library of profiles a render reads.

A kit named ``Kit10`` or ``Audio Export 3`` carries no genre word. Its family is inferred from
what it sounds like: its tempo must lie in the family's tempo band (the union of its genres'
ranges), and among those families the one whose named kits it is closest to wins, by tempo
and by sound (the per-category mean feature vectors, standardised over the library). With no
named kit of a family to compare with, the tempo band alone speaks. The confidence is the
winning family's share of the votes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from daemon.compose.genres import GenreRules
from daemon.kits.profile import KitProfile

TEMPO_SCALE_BPM = 4.0  # tempo closeness falls to 1/e at this distance
TEMPO_READINGS = (1.0, 0.5, 2.0)
#: With no named kit to compare with, a family's tempo band alone votes this much.
BAND_ONLY_WEIGHT = 0.5
#: Kits inferred at once: each batch holds a few (batch × a family's named kits) float
#: arrays, 40 MB each at 10,000 named kits.
CHUNK_KITS = 512


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
    inferred = iter(infer_families([profile for profile in profiles if not profile.family],
                                   named, genres, scale=_sound_scale(profiles)))
    resolved = tuple(profile if profile.family else next(inferred) for profile in profiles)
    return KitLibrary(resolved, {name: genre.family for name, genre in genres.items()})


def infer_family(profile: KitProfile, named: Sequence[KitProfile],
                 genres: Mapping[str, GenreRules], *,
                 scale: tuple[np.ndarray, np.ndarray] | None = None) -> KitProfile:
    """`profile` with a family inferred from its tempo and sound (see `infer_families`)."""
    return infer_families([profile], named, genres, scale=scale)[0]


def infer_families(profiles: Sequence[KitProfile], named: Sequence[KitProfile],
                   genres: Mapping[str, GenreRules], *,
                   scale: tuple[np.ndarray, np.ndarray] | None = None) -> list[KitProfile]:
    """`profiles`, in order, each with a family inferred from its tempo and sound.

    The candidates are the families in whose tempo band the kit lies (all of them when it
    lies in none or has no tempo). Each collects, from each of its named kits, the product
    of their tempo closeness and sound similarity (a kernel vote: a family of many close
    kits is the likelier); a family without named kits gets a vote from its genres' mean
    default tempo only, at `BAND_ONLY_WEIGHT`. The most voted candidate wins (ties go to the
    first name); the confidence is its share of the candidates' votes, rounded to 3.

    Sound vectors are standardised with `scale` (mean, spread) where their width is its
    width. Vectors of another width (they only occur mid-upgrade) are compared as they are,
    and only with vectors of the same category and width. The kits are inferred in batches
    of `CHUNK_KITS`, each against a candidate family's named kits at once (matrix products).
    """
    bands = family_bands(genres)
    families = sorted(bands)  # np.argmax takes the first of equal votes: the first name
    blocks = _sound_blocks([*profiles, *named])
    voters = [_stack_kits([kit for kit in named if kit.family == family], blocks, scale)
              for family in families]
    compared = np.array([len(kits.tempi) > 0 for kits in voters])
    defaults = np.array([np.mean([g.bpm_default for g in genres.values() if g.family == family])
                         for family in families])
    inferred = []
    for start in range(0, len(profiles), CHUNK_KITS):
        chunk = profiles[start:start + CHUNK_KITS]
        kits = _stack_kits(chunk, blocks, scale)
        candidate = _candidates(kits.tempi, [bands[family] for family in families])
        # The band's vote where a family has no named kits, -inf where it is no candidate;
        # named kits vote only for the kits their family is a candidate of (less work).
        votes = np.where(candidate, BAND_ONLY_WEIGHT * _tempo_closeness(kits.tempi, defaults),
                         -np.inf)
        for column in np.flatnonzero(compared):
            rows = np.flatnonzero(candidate[:, column])
            votes[rows, column] = _kernel_votes(kits.take(rows), voters[column])
        inferred += _elect(chunk, votes, families, compared)
    return inferred


def family_bands(genres: Mapping[str, GenreRules]) -> dict[str, tuple[float, float]]:
    """Family → the tempo range its genres cover."""
    bands: dict[str, tuple[float, float]] = {}
    for genre in genres.values():
        low, high = bands.get(genre.family, (genre.bpm_min, genre.bpm_max))
        bands[genre.family] = (min(low, genre.bpm_min), max(high, genre.bpm_max))
    return bands


@dataclass(frozen=True)
class _KitStack:
    """Kits as arrays (from `_stack_kits`), one row per kit."""

    tempi: np.ndarray  # NaN: no tempo
    units: np.ndarray  # kits × Σ block widths: each sound vector as a unit row in its block
    present: np.ndarray  # kits × blocks: 1 where the kit has a (nonzero) vector

    def take(self, rows: np.ndarray) -> _KitStack:
        return _KitStack(self.tempi[rows], self.units[rows], self.present[rows])


def _sound_blocks(profiles: Sequence[KitProfile]) -> list[tuple[str, int]]:
    """The (category, width) pairs of the kits' sound vectors: one column block each, so
    that only vectors of one category and one width are ever compared."""
    return sorted({(category, len(vector)) for profile in profiles
                   for category, vector in profile.sound.items()})


def _stack_kits(profiles: Sequence[KitProfile], blocks: Sequence[tuple[str, int]],
                scale: tuple[np.ndarray, np.ndarray] | None) -> _KitStack:
    """`profiles` as arrays, sound vectors standardised by `scale` where their width is its
    width (a zero vector has no direction: it counts as none)."""
    rows_of = defaultdict(list)
    for row, profile in enumerate(profiles):
        for category, vector in profile.sound.items():
            rows_of[category, len(vector)].append(row)
    units = np.zeros((len(profiles), sum(width for _, width in blocks)))
    present = np.zeros((len(profiles), len(blocks)))
    offset = 0
    for block, (category, width) in enumerate(blocks):
        rows = rows_of[category, width]
        vectors = np.array([profiles[row].sound[category] for row in rows],
                           dtype=np.float64).reshape(len(rows), width)
        if scale is not None and scale[0].shape == (width,):
            vectors = (vectors - scale[0]) / scale[1]
        norms = np.linalg.norm(vectors, axis=1)
        nonzero = norms > 0
        kept = np.array(rows, dtype=np.intp)[nonzero]
        units[kept, offset:offset + width] = vectors[nonzero] / norms[nonzero, None]
        present[kept, block] = 1.0
        offset += width
    tempi = np.array([np.nan if p.tempo is None else p.tempo for p in profiles],
                     dtype=np.float64)
    return _KitStack(tempi, units, present)


def _kernel_votes(kits: _KitStack, voters: _KitStack) -> np.ndarray:
    """Per kit: the sum over `voters` of tempo closeness times sound similarity."""
    votes = _sound_similarity(kits, voters)
    votes *= _tempo_closeness(kits.tempi, voters.tempi)
    return votes.sum(axis=1)


def _sound_similarity(kits: _KitStack, others: _KitStack) -> np.ndarray:
    """Kits × others, 0..1: the mean cosine of two kits' sound vectors over the blocks both
    have; 0.5 where they share none (nothing to compare)."""
    similarity = kits.units @ others.units.T  # summed cosines; in place from here (memory)
    shared = kits.present @ others.present.T
    unshared = shared == 0
    similarity /= np.maximum(shared, 1.0, out=shared)
    similarity += 1.0
    similarity /= 2.0
    np.copyto(similarity, 0.5, where=unshared)
    return similarity


def _candidates(tempi: np.ndarray, bands: Sequence[tuple[float, float]]) -> np.ndarray:
    """Kits × bands: whether the band holds the kit's tempo; all of a kit's are candidates
    when none holds it or it has no tempo (NaN)."""
    low, high = np.array(bands, dtype=np.float64).reshape(-1, 2).T
    candidate = (low <= tempi[:, None]) & (tempi[:, None] <= high)  # False for NaN
    candidate[~candidate.any(axis=1)] = True
    return candidate


def _elect(profiles: Sequence[KitProfile], votes: np.ndarray, families: Sequence[str],
           compared: np.ndarray) -> list[KitProfile]:
    """`profiles` with the family of the most `votes` (kits × families, -inf for no
    candidate; the first of equals) and its share of the candidates' votes as confidence."""
    winners = np.argmax(votes, axis=1)
    totals = np.where(np.isneginf(votes), 0.0, votes).sum(axis=1)
    return [replace(profile, family=families[winner],
                    family_source="tempo and sound" if compared[winner] else "tempo",
                    family_confidence=round(float(votes[row, winner] / total), 3)
                    if total else 0.0)
            for row, (profile, winner, total) in enumerate(zip(profiles, winners, totals))]


def _sound_scale(profiles: Sequence[KitProfile]) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and spread per dimension of every kit's category vectors: each dimension of the
    classifier's vector has its own unit, so they are compared standardised."""
    widths = [len(v) for p in profiles for v in p.sound.values()]
    if len(widths) < 2:
        return None
    width = max(set(widths), key=widths.count)
    stacked = np.array([v for p in profiles for v in p.sound.values() if len(v) == width],
                       dtype=np.float64)
    return stacked.mean(axis=0), stacked.std(axis=0) + 1e-6


def _tempo_closeness(tempi: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Tempi × others, 0..1: exp(-distance / `TEMPO_SCALE_BPM`), the distance taken at the
    closest of `TEMPO_READINGS` of each tempo; 0.5 where either is NaN (no tempo)."""
    closeness = np.full((len(tempi), len(others)), np.inf)  # the distance first, in place
    reading_distance = np.empty_like(closeness)
    for reading in TEMPO_READINGS:
        np.subtract.outer(tempi * reading, others, out=reading_distance)
        np.minimum(closeness, np.abs(reading_distance, out=reading_distance), out=closeness)
    closeness /= -TEMPO_SCALE_BPM
    np.exp(closeness, out=closeness)
    closeness[np.isnan(tempi)] = 0.5
    closeness[:, np.isnan(others)] = 0.5
    return closeness
