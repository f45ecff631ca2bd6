"""Stored kit profiles, kept fresh: computed after a kit's ingest, again when it is stale.

Each profile is stored with a stamp of the rules it was computed under and of its kit's
revision, which the database bumps whenever a stem of the kit is added, removed or relabelled
(category, kind, tempo, key, analysis version; schema v10), so a rules change, a user's
correction or a re-analysis makes it stale; `load_library` computes stale and missing profiles
again (lazily, when the library is next read) and resolves the families of kits whose names
carry no genre word. Which profiles are stale is read from the kit rows alone: a library of a
million stems is not read to find the one kit that changed.

Hearing the tonal stems needs audio, which this package does not touch: the caller passes a
`Hear` function (the engine passes the renderer's ear).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemon.compose.rules import Rules, load_rules
from daemon.kits.family import KitLibrary, build_library
from daemon.kits.profile import KitProfile, from_dict, profile_kit, rules_hash
from daemon.store import queries
from daemon.store.records import KitRecord, StemRecord

#: Stems → stem id → the key each tonal stem is heard in.
Hear = Callable[[Sequence[StemRecord]], Mapping[int, str | None]]


@dataclass
class ProfileCache:
    """What a process has read of the profiles: each by kit id with the stamp it was
    computed under, and the library last built from them with the stamps of all its kits. A
    process that reads the library again reads, computes and infers only what changed."""

    profiles: dict[int, tuple[str, KitProfile]] = field(default_factory=dict)
    library: tuple[tuple[tuple[int, str], ...], KitLibrary] | None = None


def load_library(library: Path, rules_dir: Path, *, hear: Hear,
                 cache: ProfileCache | None = None) -> KitLibrary:
    """Every complete kit's profile (stale or missing ones computed and stored again), with
    families resolved; through `cache`, unchanged profiles are not read again and an
    unchanged library is returned as it was built.

    Raises
    ------
    RuleError
        The genre or lexicon rules are broken.
    """
    cache = ProfileCache() if cache is None else cache
    digest = rules_hash(rules_dir)
    kits = queries.complete_kits()
    stamps = tuple((kit.id, f"{digest}:{kit.revision}") for kit in kits)
    if cache.library is not None and cache.library[0] == stamps:
        return cache.library[1]
    rules = load_rules(rules_dir)
    stamp_of = dict(stamps)
    unread = [kit for kit in kits if cache.profiles.get(kit.id, ("",))[0] != stamp_of[kit.id]]
    stored = queries.kit_profiles(kit.id for kit in unread)
    stale = []
    for kit in unread:
        saved = stored.get(kit.id)
        profile = from_dict(saved[1]) if saved and saved[0] == stamp_of[kit.id] else None
        if profile is None:
            stale.append(kit)
        else:
            cache.profiles[kit.id] = (stamp_of[kit.id], profile)
    by_kit: dict[str, list[StemRecord]] = defaultdict(list)
    for stem in queries.kit_stems(library, [kit.name for kit in stale]):
        by_kit[stem.kit].append(stem)
    for kit in stale:
        cache.profiles[kit.id] = (stamp_of[kit.id], _compute(
            kit, by_kit[kit.name], rules, stamp_of[kit.id], hear))
    for gone in set(cache.profiles) - set(stamp_of):
        del cache.profiles[gone]
    built = build_library([cache.profiles[kit.id][1] for kit in kits], rules.genres)
    cache.library = (stamps, built)
    return built


def _compute(kit: KitRecord, stems: Sequence[StemRecord], rules: Rules, stamp: str,
             hear: Hear) -> KitProfile:
    profile = profile_kit(kit.name, stems, rules, heard=hear(stems))
    queries.save_kit_profile(kit.id, stamp, profile.to_dict())
    return profile
