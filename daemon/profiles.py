"""Kit profiles for the engine's work: the library of profiles, read with the renderer's ear.

`daemon.kits` computes and stores profiles but touches no audio; the renderer hears tonal
stems but touches no database. This module joins them for the engine (`daemon.work`): it
loads the library's profiles, computing stale ones with `daemon.render.harmony.hear_stems`,
summarises them for ``traum kits`` and ``traum status``, and tells the planner which keys
the likely backbone kit plays in.
"""

from __future__ import annotations

import logging
from typing import Any

from daemon.categories import CategoryTable, load_categories
from daemon.compose.plan import Plan
from daemon.config import Config
from daemon.errors import TraumError
from daemon.kits.family import KitLibrary
from daemon.kits.refresh import load_library
from daemon.render.backbone import choose_backbone
from daemon.render.harmony import hear_stems

log = logging.getLogger("traum.work")


def kit_library(config: Config) -> KitLibrary:
    """Every complete kit's profile; stale or missing ones are computed (and stored) again,
    their tonal stems heard by the renderer's ear.

    Raises
    ------
    RuleError
        The rules are broken.
    """
    categories = load_categories(config.paths.rules)
    return load_library(config.paths.library, config.paths.rules,
                        hear=lambda stems: hear_stems(stems, cache_dir=config.paths.cache,
                                                      categories=categories))


def kit_summaries(config: Config) -> list[dict[str, Any]]:
    """The profiles as ``traum kits`` and ``traum status`` show them; empty (and logged) when
    they cannot be read, which must not stop an ingest or a status."""
    try:
        return [profile.summary() for profile in kit_library(config).profiles]
    except TraumError as exc:
        log.error("kit profiles not updated: %s", exc)
        return []


def backbone_keys(plan: Plan, kits: KitLibrary, *, categories: CategoryTable,
                  config: Config) -> tuple[str | None, dict[str, int]]:
    """The kit that would be `plan`'s backbone and its keys as heard (key → tonal stems);
    (None, {}) without profiled kits or keys."""
    backbone = choose_backbone(plan, kits, categories=categories,
                               max_stretch=config.render.max_stretch,
                               max_semitones=config.render.max_semitones)
    if backbone is None:
        return None, {}
    profile = kits.profile(backbone.kits[0])
    return backbone.kits[0], dict(profile.keys) if profile else {}
