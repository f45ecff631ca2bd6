"""FILE.dawproject: valid against the published DAWproject 1.0 schema, and faithful to the plan.

Each genre below is arranged by the real arranger, rendered from the synthesised kit and
exported; the archive is then reopened and read as a DAW would: tracks, clips at the plan's
bars (in beats), markers, tempo, metadata, and every file the XML names.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import soundfile as sf
import xmlschema
from render_helpers import kit_records
from track_helpers import render_track

from daemon.compose.arrange import plan_prompt
from daemon.compose.rules import load_rules
from daemon.render.mix import energy_gain_db
from daemon.render.outputs import write_outputs
from daemon.render.outputs.dawproject import safe_name

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(__file__).resolve().parent / "data" / "dawproject"
PROMPTS = ("driving techno 132 bpm 40 seconds",  # loops stretched, a drop
           "deep house 122 bpm 75 seconds",  # five sections, loops stretched the other way
           "hip hop 90 bpm 30 seconds")  # too slow for the kit's 128 BPM loops: one-shots only


@pytest.fixture(scope="module")
def library(tmp_path_factory, synth_kit):
    return kit_records(synth_kit, tmp_path_factory.mktemp("library") / "TE Test Kit")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module", params=PROMPTS)
def exported(request, tmp_path_factory, library, cache):
    """(track, archive path, parsed project.xml, parsed metadata.xml) for one prompt."""
    plan = plan_prompt(request.param, load_rules(ROOT / "rules"), seed=3,
                       key_counts={"A minor": 10})
    track = render_track(plan, library, cache_dir=cache)
    folder = tmp_path_factory.mktemp("export")
    result = write_outputs(track, folder / "track.wav", exports=("dawproject",))
    archive = result.exports["dawproject"]
    with zipfile.ZipFile(archive) as bundle:
        project = ET.fromstring(bundle.read("project.xml"))
        metadata = ET.fromstring(bundle.read("metadata.xml"))
    return track, archive, project, metadata


@pytest.fixture(scope="module")
def schemas():
    return (xmlschema.XMLSchema(SCHEMAS / "Project.xsd"),
            xmlschema.XMLSchema(SCHEMAS / "MetaData.xsd"))


def tracks_by_name(project: ET.Element) -> dict[str, tuple[ET.Element, list[ET.Element]]]:
    """Track name → (its Track element, the Clip elements on its arrangement lane)."""
    tracks = {track.get("id"): track for track in project.iter("Track")}
    result = {}
    for lanes in project.find("Arrangement").find("Lanes").findall("Lanes"):
        track = tracks[lanes.get("track")]
        result[track.get("name")] = (track, lanes.find("Clips").findall("Clip"))
    return result


def test_project_and_metadata_validate_against_the_published_schema(exported, schemas):
    _, archive, _, _ = exported
    project_schema, metadata_schema = schemas
    with zipfile.ZipFile(archive) as bundle:
        project_schema.validate(bundle.read("project.xml").decode("utf-8"))
        metadata_schema.validate(bundle.read("metadata.xml").decode("utf-8"))


def test_clips_sit_on_the_bars_of_each_section_a_lane_plays_in(exported):
    track, _, project, _ = exported
    plan = track.plan
    starts = plan.section_starts()
    names = [section.section for section in plan.structure]
    playing: dict[str, set[int]] = {}
    for choice in track.choices:
        playing.setdefault(choice.lane, set()).add(names.index(choice.section))
    by_name = tracks_by_name(project)
    assert [name for name in by_name if not name.endswith("(original)")] == list(track.lanes)
    for lane, sections in playing.items():
        expected = sorted((4.0 * starts[i], 4.0 * plan.structure[i].bars) for i in sections)
        _, clips = by_name[lane]
        assert sorted((float(c.get("time")), float(c.get("duration"))) for c in clips) == \
            expected, lane
        original = by_name.get(f"{lane} (original)")
        if original is not None:  # the loop's library sample, muted, at the same places
            original_track, original_clips = original
            assert original_track.find("Channel/Mute").get("value") == "true"
            assert {(c.get("time"), c.get("duration")) for c in original_clips} <= \
                {(c.get("time"), c.get("duration")) for c in clips}


def test_every_file_named_is_in_the_archive_under_a_relative_path(exported):
    _, archive, project, _ = exported
    with zipfile.ZipFile(archive) as bundle:
        entries = set(bundle.namelist())
    named = {file.get("path") for file in project.iter("File")}
    assert named and named <= entries
    assert entries == named | {"project.xml", "metadata.xml"}  # nothing unreferenced
    for name in entries:
        path = PurePosixPath(name)
        assert not path.is_absolute() and ".." not in path.parts and "\\" not in name
    assert all(file.get("external") is None for file in project.iter("File"))


def test_transport_markers_and_metadata_describe_the_plan(exported):
    track, _, project, metadata = exported
    plan = track.plan
    transport = project.find("Transport")
    assert float(transport.find("Tempo").get("value")) == plan.bpm
    assert transport.find("Tempo").get("unit") == "bpm"
    signature = transport.find("TimeSignature")
    assert (signature.get("numerator"), signature.get("denominator")) == ("4", "4")
    markers = project.find("Arrangement/Markers").findall("Marker")
    assert [(m.get("name"), float(m.get("time"))) for m in markers] == \
        [(s.section, 4.0 * start) for start, s in zip(plan.section_starts(), plan.structure)]
    assert metadata.findtext("Title") == plan.prompt
    assert metadata.findtext("Artist") == metadata.findtext("Producer") == "Traum-Engine"
    assert metadata.findtext("Genre") == plan.genre
    comment = metadata.findtext("Comment")
    assert plan.key in comment and f"seed {plan.seed}" in comment and f"{plan.bpm:g} BPM" in comment


def test_clip_audio_is_what_the_mix_played(exported):
    """Loop clips hold the conformed stem (looped from the right phase); one-shot clips hold
    the region as the mix rendered it."""
    track, archive, project, _ = exported
    by_name = tracks_by_name(project)
    with zipfile.ZipFile(archive) as bundle:
        for lane in track.lanes:
            _, clips = by_name[lane]
            for region in track.lane_regions(lane):
                first = next(c for c in clips if float(c.get("time")) == 4.0 * region.start_bar)
                file = first.find(".//File").get("path")
                audio, rate = sf.read(io.BytesIO(bundle.read(file)), dtype="float32")
                assert rate == track.sample_rate
                expected = (track.source(region) if region.mode == "loop"
                            else track.region_audio(region))
                assert np.array_equal(audio.T, expected), (lane, region.start_bar)
                assert float(first.get("playStart")) == 0.0
                if region.mode == "loop":
                    assert float(first.get("loopEnd")) == pytest.approx(
                        expected.shape[1] / rate)


def test_volume_points_follow_the_mix_levels(exported):
    """One-shot clips are at mix level (unity gain); a loop section plays at its staging gain
    plus the section's energy level."""
    track, _, project, _ = exported
    volumes = {}
    for lanes in project.find("Arrangement/Lanes").findall("Lanes"):
        points = lanes.find("Points")
        target = points.find("Target").get("parameter")
        volumes[target] = {float(p.get("time")): float(p.get("value"))
                           for p in points.findall("RealPoint")}
    by_name = tracks_by_name(project)
    for lane in track.lanes:
        channel, _ = by_name[lane]
        points = volumes[channel.find("Channel/Volume").get("id")]
        for region in track.lane_regions(lane):
            level = points[4.0 * region.start_bar]
            if region.mode == "loop":
                section = track.plan.structure[region.sections[0]]
                gain = track.lane_gain_db[(lane, region.pick.stem.id)] + \
                    energy_gain_db(section.energy)
                assert level == pytest.approx(10 ** (gain / 20), rel=1e-6)
            else:
                assert level == 1.0


def test_file_names_in_the_archive_are_portable():
    assert safe_name("Bass Loops/TE Bäss #1 (128).wav") == "Bass_Loops_TE_B_ss_1_128_.wav"
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("???") == "audio"
