"""The mastered track as a WAV at the configured bit depth, with a cue marker per section."""

from __future__ import annotations

from pathlib import Path

from daemon.render.export import write_wav
from daemon.render.track import RenderedTrack


def write_master_wav(track: RenderedTrack, target: Path) -> None:
    """Write ``track.bus`` to `target` (``settings.bit_depth`` bits) with section cues."""
    write_wav(target, track.bus, sample_rate=track.sample_rate,
              bit_depth=track.settings.bit_depth, cues=track.section_cues())
