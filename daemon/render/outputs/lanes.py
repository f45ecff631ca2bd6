"""One 24-bit WAV per lane in ``FILE.lanes/NN-lane.wav``, for a DAW.

Every lane file runs the whole track from sample 0, so dropped into a DAW at bar 1 they line
up. A lane is what the mix added to the bus (staging, energy, fades, ducking; not the section
rides, the sweeps or the limiter, which act on the whole mix), times one gain for all lanes:
the master's static gain, so that the lanes sum to about the master before its limiter, lowered
where needed so that no lane peaks above `LANE_PEAK_DB` (24-bit PCM would clip it). Lanes are
rendered and written one at a time, a region at a time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from daemon.render.export import BLOCK, WavWriter
from daemon.render.track import RenderedTrack

LANE_BIT_DEPTH = 24
LANE_PEAK_DB = -1.0  # the loudest lane peaks at most here


def write_lanes(track: RenderedTrack, target: Path) -> None:
    """Write ``target/NN-lane.wav`` for every lane (numbered in `RenderedTrack.lanes` order)
    and remove lane files an earlier render of the same name left there."""
    target.mkdir(parents=True, exist_ok=True)
    scale = np.float32(10.0 ** (lane_gain_db(track) / 20.0))
    names = [lane_file_name(number, lane) for number, lane in enumerate(track.lanes, 1)]
    for name, lane in zip(names, track.lanes):
        with WavWriter(target / name, sample_rate=track.sample_rate,
                       bit_depth=LANE_BIT_DEPTH) as writer:
            for start, audio in track.lane_parts(lane):
                writer.write_silence(start - writer.frames)
                for offset in range(0, audio.shape[1], BLOCK):
                    writer.write(audio[:, offset:offset + BLOCK] * scale)
            writer.write_silence(track.frames - writer.frames)
    for stale in target.glob("*.wav"):
        if stale.name not in names:
            stale.unlink(missing_ok=True)


def lane_file_name(number: int, lane: str) -> str:
    """``01-kick.wav``: numbered so a file browser lists the lanes in track order."""
    return f"{number:02d}-{lane}.wav"


def lane_gain_db(track: RenderedTrack) -> float:
    """The gain (dB) every lane is written with: the master's static gain, or less when the
    loudest lane would then peak above `LANE_PEAK_DB`."""
    peak = max(track.lane_peak.values(), default=0.0)
    if peak <= 0.0:
        return float(track.mastering.gain_db)
    return float(min(track.mastering.gain_db, LANE_PEAK_DB - 20.0 * math.log10(peak)))
