"""``project.xml`` and ``metadata.xml`` of a DAWproject 1.0 file, from plain track specs.

The element order and attribute names follow the format's published schema (``Project.xsd``,
``MetaData.xsd``; the tests validate every file against a vendored copy). Time is in beats
(quarter notes) on the arrangement; a clip's content is in seconds for audio that already
plays at the project tempo, and in beats, through a ``Warps`` map, for an original sample that
a DAW must warp to the tempo itself.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from daemon import __version__
from daemon.compose.plan import BEATS_PER_BAR, Plan

FORMAT_VERSION = "1.0"
APPLICATION = "Traum-Engine"


@dataclass(frozen=True)
class AudioRef:
    """An audio file inside the archive."""

    path: str  # relative, "/"-separated
    channels: int
    sample_rate: int
    seconds: float


@dataclass(frozen=True)
class ClipSpec:
    """One clip on a track: where it sits (beats) and what it plays."""

    name: str
    time: float  # beats from the start of the arrangement
    duration: float  # beats
    audio: AudioRef
    play_start: float  # where playback starts in the content (seconds, or beats if warped)
    loop_end: float | None = None  # the content loops from 0 to here; None: no loop
    warp: tuple[float, float] | None = None  # (beats, seconds): original tempo map
    comment: str = ""


@dataclass(frozen=True)
class TrackSpec:
    """One audio track: its clips and its level per section."""

    name: str
    clips: tuple[ClipSpec, ...]
    volume: tuple[tuple[float, float], ...]  # (beats, linear gain) points, held until the next
    muted: bool = False
    comment: str = ""


def project_xml(plan: Plan, tracks: Sequence[TrackSpec], *, master_gain: float) -> bytes:
    """The ``project.xml`` document: transport, tracks with their mixer channels, the
    arrangement's clips and volume automation, and one marker per section."""
    ids = (f"id{number}" for number in itertools.count())
    project = ET.Element("Project", version=FORMAT_VERSION)
    ET.SubElement(project, "Application", name=APPLICATION, version=__version__)
    transport = ET.SubElement(project, "Transport")
    ET.SubElement(transport, "Tempo", id=next(ids), name="Tempo", unit="bpm",
                  value=_number(plan.bpm), min="20", max="999")
    ET.SubElement(transport, "TimeSignature", id=next(ids), numerator=str(BEATS_PER_BAR),
                  denominator="4")
    structure = ET.SubElement(project, "Structure")
    # The master is listed last, as DAWs do, but every lane channel names it as destination.
    master_track = ET.Element("Track", id=next(ids), name="Master", contentType="audio",
                              loaded="true")
    master_channel = _channel(master_track, ids, role="master", gain=master_gain,
                              destination=None, muted=False)
    master_channel.set("comment", "static gain of the mastering; its limiter is not included")
    arrangement = ET.SubElement(project, "Arrangement", id=next(ids))
    lanes = ET.SubElement(arrangement, "Lanes", id=next(ids), timeUnit="beats")
    for spec in tracks:
        track = ET.SubElement(structure, "Track", id=next(ids), name=spec.name,
                              contentType="audio", loaded="true")
        if spec.comment:
            track.set("comment", spec.comment)
        channel = _channel(track, ids, role="regular", gain=spec.volume[0][1],
                           destination=master_channel.get("id"), muted=spec.muted)
        _track_lanes(lanes, spec, ids, track_id=track.get("id"),
                     volume_id=channel.find("Volume").get("id"))
    structure.append(master_track)
    markers = ET.SubElement(arrangement, "Markers", id=next(ids))
    for start, section in zip(plan.section_starts(), plan.structure):
        ET.SubElement(markers, "Marker", time=_number(start * BEATS_PER_BAR),
                      name=section.section)
    return _document(project)


def metadata_xml(plan: Plan, *, comment: str) -> bytes:
    """The ``metadata.xml`` document: title (the prompt), artist and producer, genre and a
    comment with key, tempo and seed (the schema has no fields of their own for them)."""
    metadata = ET.Element("MetaData")
    for tag, text in (("Title", plan.prompt), ("Artist", APPLICATION),
                      ("Producer", APPLICATION), ("Genre", plan.genre), ("Comment", comment)):
        ET.SubElement(metadata, tag).text = text
    return _document(metadata)


def _channel(track: ET.Element, ids: Iterator[str], *, role: str, gain: float,
             destination: str | None, muted: bool) -> ET.Element:
    """A stereo mixer channel with mute, centred pan (the mix does not pan) and volume."""
    channel = ET.SubElement(track, "Channel", id=next(ids), role=role, audioChannels="2")
    if destination:
        channel.set("destination", destination)
    ET.SubElement(channel, "Mute", id=next(ids), name="Mute", value=str(muted).lower())
    ET.SubElement(channel, "Pan", id=next(ids), name="Pan", unit="normalized", value="0.5",
                  min="0", max="1")
    ET.SubElement(channel, "Volume", id=next(ids), name="Volume", unit="linear",
                  value=_number(gain), min="0")
    return channel


def _track_lanes(parent: ET.Element, spec: TrackSpec, ids: Iterator[str], *, track_id: str,
                 volume_id: str) -> None:
    """The track's timeline: its clips, then its volume points."""
    lanes = ET.SubElement(parent, "Lanes", id=next(ids), track=track_id)
    clips = ET.SubElement(lanes, "Clips", id=next(ids))
    for clip in spec.clips:
        _clip(clips, clip, ids)
    points = ET.SubElement(lanes, "Points", id=next(ids), unit="linear")
    ET.SubElement(points, "Target", parameter=volume_id)
    for time, gain in spec.volume:
        ET.SubElement(points, "RealPoint", time=_number(time), value=_number(gain),
                      interpolation="hold")


def _clip(parent: ET.Element, spec: ClipSpec, ids: Iterator[str]) -> None:
    clip = ET.SubElement(parent, "Clip", name=spec.name, time=_number(spec.time),
                         duration=_number(spec.duration),
                         contentTimeUnit="beats" if spec.warp else "seconds",
                         playStart=_number(spec.play_start))
    if spec.comment:
        clip.set("comment", spec.comment)
    if spec.loop_end is not None:
        clip.set("loopStart", "0")
        clip.set("loopEnd", _number(spec.loop_end))
    holder = clip
    if spec.warp:
        holder = ET.SubElement(clip, "Warps", id=next(ids), timeUnit="beats",
                               contentTimeUnit="seconds")
    audio = ET.SubElement(holder, "Audio", id=next(ids), timeUnit="seconds",
                          channels=str(spec.audio.channels),
                          sampleRate=str(spec.audio.sample_rate),
                          duration=_number(spec.audio.seconds))
    ET.SubElement(audio, "File", path=spec.audio.path)
    if spec.warp:
        beats, seconds = spec.warp
        ET.SubElement(holder, "Warp", time="0", contentTime="0")
        ET.SubElement(holder, "Warp", time=_number(beats), contentTime=_number(seconds))


def _number(value: float) -> str:
    """Shortest exact-enough decimal text (microsecond precision for seconds)."""
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _document(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
