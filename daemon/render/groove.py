"""A kick that leads: in four-on-the-floor genres no percussion lane sits as loud as the kick.

The kick's pulse is the groove of techno, house and trance; a hi-hat or a percussion loop as
loud as the kick muddies it. So in a plan with `Plan.four_on_floor`, every other percussive
lane (``percussive`` in rules/categories.toml: hats, claps, percussion, drum loops) is staged
at least `KICK_HEADROOM_DB` below the kick lane's loudness target, on top of the genre's own
trims for parts that fight the beat (``level_db`` in rules/patterns.toml).
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.compose.plan import Plan
from daemon.render.sequence import Region

KICK_CATEGORY = "kick"
KICK_HEADROOM_DB = 3.0  # the quietest margin at which a listener still hears the kick on top


def kick_loudness(regions: Sequence[Region]) -> float | None:
    """The kick lane's staging target (LUFS), or None when no kick plays."""
    return next((region.traits.loudness for region in regions
                 if region.category == KICK_CATEGORY), None)


def lane_target(region: Region, *, plan: Plan, kick: float | None) -> float:
    """The loudness a lane is staged to: its category's, capped `KICK_HEADROOM_DB` below the
    kick's (`kick`, from `kick_loudness`) for a percussive lane of a four-on-the-floor plan."""
    target = region.traits.loudness
    if (not plan.four_on_floor or kick is None or region.category == KICK_CATEGORY
            or not region.traits.percussive):
        return target
    return min(target, kick - KICK_HEADROOM_DB)
