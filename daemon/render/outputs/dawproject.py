"""``FILE.dawproject``: the whole arrangement for a DAW, as a DAWproject 1.0 archive.

The zip holds ``project.xml``, ``metadata.xml`` and every audio file they name, under
relative paths; nothing is written outside the target. One track per lane (in
`RenderedTrack.lanes` order), with a clip for each section the lane plays in, at its position
in beats:

- a loop plays its conformed audio (stretched and shifted as in the mix, so it plays right in
  any DAW), looped from the right phase; a muted "original" track beside it holds the
  library sample with a warp map at its own tempo, for DAWs that re-warp;
- a one-shot region plays its audio as the mix rendered it (pattern, gains, fades, ducking).

Levels: one-shot audio is at mix level; loop clips are raw, and the track's volume points
give each section its staging gain plus energy, as in the mix. The master channel carries
the mastering's static gain. Audio is 32-bit float WAV, stored uncompressed; regions are
rendered and streamed into the archive one at a time.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from daemon.compose.plan import BEATS_PER_BAR
from daemon.fsutil import atomic_output
from daemon.render.conform import loop_geometry
from daemon.render.export import BLOCK, write_wav_stream
from daemon.render.mix import section_gain_db
from daemon.render.outputs.dawproject_xml import (
    AudioRef,
    ClipSpec,
    TrackSpec,
    metadata_xml,
    project_xml,
)
from daemon.render.sequence import Region
from daemon.render.track import RenderedTrack, source_key

AUDIO_BIT_DEPTH = 32  # float: audio at mix level may exceed full scale
WAV_HEADER_BYTES = 58  # RIFF, fmt with cbSize, fact and data headers of a float WAV


def write_dawproject(track: RenderedTrack, target: Path) -> None:
    """Write the DAWproject archive of `track` to `target`."""
    with atomic_output(target) as temp, zipfile.ZipFile(temp, "w", zipfile.ZIP_STORED) as zf:
        archive = _Archive(zf, track)
        specs = [spec for number, lane in enumerate(track.lanes, 1)
                 for spec in archive.lane_tracks(number, lane)]
        master_gain = 10.0 ** (track.mastering.gain_db / 20.0)
        zf.writestr("project.xml", project_xml(track.plan, specs, master_gain=master_gain),
                    compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("metadata.xml", metadata_xml(track.plan, comment=_comment(track)),
                    compress_type=zipfile.ZIP_DEFLATED)


def safe_name(text: str) -> str:
    """A file name of ASCII letters, digits, dots, dashes and underscores (at most 60)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("._")[:60] or "audio"


class _Archive:
    """Writes a track's audio into the zip and describes its tracks and clips."""

    def __init__(self, zf: zipfile.ZipFile, track: RenderedTrack) -> None:
        self.zf, self.track = zf, track
        self.starts = track.plan.section_starts()
        self.originals: dict[int, AudioRef] = {}  # stem id → its library file in the zip

    def lane_tracks(self, number: int, lane: str) -> list[TrackSpec]:
        """The lane's track, and a muted track of the original samples when it loops."""
        folder = f"audio/{number:02d}-{safe_name(lane)}"
        loops: dict[tuple, AudioRef] = {}
        clips: list[ClipSpec] = []
        originals: list[ClipSpec] = []
        volume: list[tuple[float, float]] = []
        for index, region in enumerate(self.track.lane_regions(lane), 1):
            # Named after the first region playing it: unique within the lane.
            name = f"{folder}/{index:03d}-{safe_name(Path(region.pick.stem.path).stem)}.wav"
            if region.mode == "loop":
                key = source_key(region.pick)
                if key not in loops:
                    loops[key] = self.add_audio(name, self.track.source(region))
                clips += self.loop_clips(region, loops[key])
                originals += self.original_clips(region)
                volume += self.loop_levels(region)
            else:  # at mix level already: the track plays it at unity gain
                clips += self.oneshot_clips(region, self.add_audio(
                    name, self.track.region_audio(region)))
                volume.append((self.beat(region.start_bar), 1.0))
        specs = [TrackSpec(lane, tuple(clips), tuple(volume))]
        if originals:
            specs.append(TrackSpec(f"{lane} (original)", tuple(originals), ((0.0, 1.0),),
                                   muted=True, comment="the library samples at their own "
                                   "tempo and key, warped to the project tempo"))
        return specs

    def loop_levels(self, region: Region) -> list[tuple[float, float]]:
        """(beat, linear gain) at each section start of a loop region: the lane's staging
        gain for the stem plus the section's energy level and trim, as the mix applied them."""
        staging = self.track.lane_gain_db[(region.lane, region.pick.stem.id)]
        return [(self.beat(self.starts[section]), 10.0 ** (section_gain_db(
                    region, section, staging_db=staging, plan=self.track.plan) / 20.0))
                for section in region.sections]

    def loop_clips(self, region: Region, audio: AudioRef) -> list[ClipSpec]:
        """A clip per section, looping the conformed audio from the phase the mix reached."""
        spb = self.track.grid.samples_per_bar
        loop_bars = max(1, round(audio.seconds * self.track.sample_rate / spb))
        return [self.clip(region, section, audio, loop_end=audio.seconds,
                          play_start=((self.starts[section] - region.start_bar) % loop_bars)
                          * spb / self.track.sample_rate)
                for section in region.sections]

    def original_clips(self, region: Region) -> list[ClipSpec]:
        """Clips of the library sample, its content in beats through a warp map from its own
        tempo, at the same places as the conformed clips."""
        stem, fit = region.pick.stem, region.pick.fit
        beats, _, tempo = loop_geometry(stem, fit.source_bpm)
        if stem.id not in self.originals:
            name = f"originals/{stem.id}-{safe_name(Path(stem.path).name)}"
            self.zf.write(stem.path, arcname=name)
            self.originals[stem.id] = AudioRef(name, stem.channels, stem.sample_rate,
                                               stem.duration)
        comment = (f"{stem.rel_path or Path(stem.path).name}: {tempo:.3f} BPM; the mix plays "
                   f"it at {self.track.plan.bpm:g} BPM, {fit.semitones:+d} semitones")
        return [self.clip(region, section, self.originals[stem.id], loop_end=float(beats),
                          play_start=float((self.starts[section] - region.start_bar)
                                           * BEATS_PER_BAR % beats),
                          warp=(float(beats), beats * 60.0 / tempo), comment=comment)
                for section in region.sections]

    def oneshot_clips(self, region: Region, audio: AudioRef) -> list[ClipSpec]:
        """A clip per section, each playing its part of the rendered region."""
        grid = self.track.grid
        origin = grid.bar(region.start_bar)
        return [self.clip(region, section, audio, loop_end=None,
                          play_start=(grid.bar(self.starts[section]) - origin)
                          / self.track.sample_rate)
                for section in region.sections]

    def clip(self, region: Region, section: int, audio: AudioRef, *, loop_end: float | None,
             play_start: float, warp: tuple[float, float] | None = None,
             comment: str = "") -> ClipSpec:
        """The clip of `region` in `section`: at the section's start, as long as it."""
        bars = self.track.plan.structure[section].bars
        return ClipSpec(name=Path(region.pick.stem.rel_path or region.pick.stem.path).stem,
                        time=self.beat(self.starts[section]), duration=self.beat(bars),
                        audio=audio, play_start=play_start, loop_end=loop_end, warp=warp,
                        comment=comment)

    def add_audio(self, name: str, audio: np.ndarray) -> AudioRef:
        """Stream ``(2, n)`` float32 `audio` into the zip as a float WAV named `name`."""
        frames = audio.shape[1]
        size = WAV_HEADER_BYTES + frames * audio.shape[0] * AUDIO_BIT_DEPTH // 8
        with self.zf.open(name, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as stream:
            write_wav_stream(stream, (audio[:, i:i + BLOCK] for i in range(0, frames, BLOCK)),
                             frames=frames, sample_rate=self.track.sample_rate,
                             bit_depth=AUDIO_BIT_DEPTH, channels=audio.shape[0])
        return AudioRef(name, audio.shape[0], self.track.sample_rate,
                        frames / self.track.sample_rate)

    @staticmethod
    def beat(bar: float) -> float:
        return float(bar * BEATS_PER_BAR)


def _comment(track: RenderedTrack) -> str:
    plan = track.plan
    moods = f"; moods {', '.join(plan.moods)}" if plan.moods else ""
    return (f"key {plan.key}; tempo {plan.bpm:g} BPM; seed {plan.seed}{moods}; "
            f"rendered by Traum-Engine to {track.mastering.lufs:.1f} LUFS, "
            f"{track.mastering.true_peak_db:.1f} dBTP")
