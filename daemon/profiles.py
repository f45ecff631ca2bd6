"""Kit profiles for the engine's work: the library of profiles, read with the renderer's ear.

`daemon.kits` computes and stores profiles but touches no audio; the renderer hears tonal
stems but touches no database. This module joins them for the engine (`daemon.work`): it
loads the library's profiles, computing stale ones with `daemon.render.harmony.hear_stems`,
summarises them for ``traum kits`` and ``traum status``, tells the planner which keys the
library and the likely backbone kit play in, and reads a render's candidate stems: the kits
it may draw on, not the whole library.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from daemon.categories import CategoryTable, load_categories
from daemon.compose.plan import Plan
from daemon.config import Config
from daemon.errors import TraumError
from daemon.kits.family import KitLibrary
from daemon.kits.refresh import ProfileCache, load_library
from daemon.render.backbone import Backbone, candidate_kits, choose_backbone, wanted_categories
from daemon.render.harmony import hear_stems
from daemon.store import queries
from daemon.store.records import StemRecord

log = logging.getLogger("traum.work")


def kit_library(config: Config, *, cache: ProfileCache | None = None) -> KitLibrary:
    """Every complete kit's profile; stale or missing ones are computed (and stored) again,
    their tonal stems heard by the renderer's ear. With `cache`, only what changed since it
    was last filled is read (`daemon.kits.refresh.load_library`).

    Raises
    ------
    RuleError
        The rules are broken.
    """
    categories = load_categories(config.paths.rules)
    return load_library(config.paths.library, config.paths.rules, cache=cache,
                        hear=lambda stems: hear_stems(stems, cache_dir=config.paths.cache,
                                                      categories=categories))


def kit_summaries(config: Config, *, cache: ProfileCache | None = None) -> list[dict[str, Any]]:
    """The profiles as ``traum kits`` and ``traum status`` show them; empty (and logged) when
    they cannot be read, which must not stop an ingest or a status."""
    try:
        return [profile.summary() for profile in kit_library(config, cache=cache).profiles]
    except TraumError as exc:
        log.error("kit profiles not updated: %s", exc)
        return []


def library_keys(kits: KitLibrary) -> dict[str, int]:
    """Key → tonal stems heard in it, over every profiled kit: the keys the library can
    serve, as the renderer will play them."""
    counts: Counter[str] = Counter()
    for profile in kits.profiles:
        counts.update(dict(profile.keys))
    return dict(counts)


def backbone_keys(plan: Plan, kits: KitLibrary, *, categories: CategoryTable,
                  config: Config) -> tuple[str | None, dict[str, int]]:
    """The kit that would be `plan`'s backbone and its keys as heard (key → tonal stems);
    (None, {}) without profiled kits or keys."""
    backbone = plan_backbone(plan, kits, categories=categories, config=config)
    if backbone is None:
        return None, {}
    profile = kits.profile(backbone.kits[0])
    return backbone.kits[0], dict(profile.keys) if profile else {}


def plan_backbone(plan: Plan, kits: KitLibrary, *, categories: CategoryTable,
                  config: Config) -> Backbone | None:
    """`plan`'s backbone (`daemon.render.backbone.choose_backbone`) within the configured
    stretch and shift limits; None without profiled kits."""
    return choose_backbone(plan, kits, categories=categories,
                           max_stretch=config.render.max_stretch,
                           max_semitones=config.render.max_semitones)


def candidate_stems(plan: Plan, kits: KitLibrary, backbone: Backbone | None, *,
                    categories: CategoryTable, config: Config) -> list[StemRecord]:
    """The stems a render of `plan` with `backbone` chooses from, ordered by id: those of
    the categories it may play in the kits `daemon.render.backbone.candidate_kits`
    shortlists, and all their tonal stems (the ear judges a kit's tonal stems together);
    every stem of the library without a backbone (no kit has a profile yet)."""
    if backbone is None:
        return queries.list_stems(config.paths.library)
    wanted = wanted_categories(plan, categories)
    return queries.kit_stems(config.paths.library, candidate_kits(backbone, kits, wanted),
                             categories=sorted(wanted | set(categories.tonal())))
