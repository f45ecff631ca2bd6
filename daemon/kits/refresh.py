"""Stored kit profiles, kept fresh: computed after a kit's ingest, again when it is stale.

Each profile is stored with a digest of the rules it was computed under and of its kit's stem
labels (category, kind, tempo, key, analysis version), so a rules change, a user's correction
or a re-analysis makes it stale; `load_library` computes stale and missing profiles again
(lazily, when the library is next read) and resolves the families of kits whose names carry
no genre word.

Hearing the tonal stems needs audio, which this package does not touch: the caller passes a
`Hear` function (the engine passes the renderer's ear).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from daemon.compose.rules import Rules, load_rules
from daemon.kits.family import KitLibrary, build_library
from daemon.kits.profile import KitProfile, from_dict, profile_kit, rules_hash
from daemon.store import queries
from daemon.store.records import KitRecord, StemRecord

#: Stems → stem id → the key each tonal stem is heard in.
Hear = Callable[[Sequence[StemRecord]], Mapping[int, str | None]]


def load_library(library: Path, rules_dir: Path, *, hear: Hear) -> KitLibrary:
    """Every complete kit's profile (stale or missing ones computed and stored again), with
    families resolved.

    Raises
    ------
    RuleError
        The genre or lexicon rules are broken.
    """
    rules = load_rules(rules_dir)
    digest = rules_hash(rules_dir)
    stored = queries.kit_profiles()
    by_kit: dict[str, list[StemRecord]] = defaultdict(list)
    for stem in queries.list_stems(library):
        by_kit[stem.kit].append(stem)
    profiles = []
    for kit in queries.complete_kits():
        stems = by_kit.get(kit.name, [])
        stamp = f"{digest}:{stems_digest(stems)}"
        saved = stored.get(kit.id)
        profile = from_dict(saved[1]) if saved and saved[0] == stamp else None
        profiles.append(profile or _compute(kit, stems, rules, stamp, hear))
    return build_library(profiles, rules.genres)


def stems_digest(stems: Sequence[StemRecord]) -> str:
    """A digest of the labels a profile is computed from."""
    digest = hashlib.sha256()
    for stem in sorted(stems, key=lambda s: s.id):
        digest.update(repr((stem.id, stem.category, stem.kind, stem.bpm, stem.key,
                            stem.analysis_version)).encode())
    return digest.hexdigest()[:16]


def _compute(kit: KitRecord, stems: Sequence[StemRecord], rules: Rules, stamp: str,
             hear: Hear) -> KitProfile:
    profile = profile_kit(kit.name, stems, rules, heard=hear(stems))
    queries.save_kit_profile(kit.id, stamp, profile.to_dict())
    return profile
