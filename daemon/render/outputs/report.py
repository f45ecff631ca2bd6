"""The JSON report beside the WAV: plan, chosen stems, measurements, sections, notes, and
why each lane plays what it plays (``"selection"``).

Its keys are a stable interface (scripts and the tests read them).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from daemon.compose.plan import plan_to_dict
from daemon.render.export import write_json
from daemon.render.track import RenderedTrack

TAIL_SECONDS = 0.0  # the track ends on the last bar line (the outro fades over its last bar)


def write_report(track: RenderedTrack, target: Path) -> None:
    """Write the report of `track` to `target` as indented UTF-8 JSON."""
    write_json(target, report(track))


def report(track: RenderedTrack) -> dict:
    """The report as a JSON-ready dict."""
    return {
        "plan": plan_to_dict(track.plan),
        "stems": [asdict(choice) for choice in track.choices],
        "measured": {"lufs": round(float(track.mastering.lufs), 3),
                     "true_peak_db": round(float(track.mastering.true_peak_db), 3),
                     "duration_seconds": round(track.duration, 6)},
        "tail_seconds": TAIL_SECONDS, "sample_rate": track.sample_rate,
        "bit_depth": track.settings.bit_depth,
        "sections": [{"section": cue.label, "start_seconds": cue.position / track.sample_rate}
                     for cue in track.section_cues()],
        "fallbacks": list(track.fallbacks), "notes": list(track.notes),
        "selection": dict(track.selection),
    }
