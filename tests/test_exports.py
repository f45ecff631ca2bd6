"""The output seam: every export name has a writer, writes one output beside the WAV, and a
failed or refused write leaves no files behind. Also the lanes and the arrangement picture,
and how a render's exports are chosen (config, a prompt's ``export:`` line, ``--export``)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf
import xmlschema
from matplotlib.image import imread
from render_helpers import kit_records, techno_plan
from track_helpers import render_track

from daemon.compose.prompt import parse_prompt, read_exports
from daemon.compose.rules import load_rules
from daemon.config import EXPORTS, parse_config, parse_exports
from daemon.errors import ConfigError, RenderError
from daemon.fsutil import TEMP_SUFFIX, atomic_output
from daemon.render.outputs import OUTPUTS, write_outputs
from daemon.render.outputs.lanes import LANE_PEAK_DB, lane_gain_db

ROOT = Path(__file__).resolve().parents[1]
ALL = ("wav", "json", *EXPORTS)


@pytest.fixture(scope="module")
def track(tmp_path_factory, synth_kit):
    folder = tmp_path_factory.mktemp("exports")
    library = kit_records(synth_kit, folder / "TE Test Kit")
    return render_track(techno_plan(bpm=132.0), library, cache_dir=folder / "cache")


def leftovers(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if TEMP_SUFFIX in path.name]


def test_every_export_name_has_a_writer():
    assert set(OUTPUTS) == set(ALL)
    suffixes = [output.suffix for output in OUTPUTS.values()]
    assert len(set(suffixes)) == len(suffixes)


def test_all_exports_are_written_beside_the_wav_and_named_after_it(track, tmp_path):
    result = write_outputs(track, tmp_path / "song.wav", exports=EXPORTS)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "song.dawproject", "song.json", "song.lanes", "song.mid", "song.png", "song.wav"]
    assert result.exports == {name: tmp_path / f"song{OUTPUTS[name].suffix}"
                              for name in EXPORTS}
    report = (tmp_path / "song.json").read_text(encoding="utf-8")
    for name in EXPORTS:
        assert f"{name}: song{OUTPUTS[name].suffix}" in report
    assert leftovers(tmp_path) == []


def test_without_exports_only_the_wav_and_the_report_are_written(track, tmp_path):
    result = write_outputs(track, tmp_path / "plain.wav", exports=("wav", "json"))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plain.json", "plain.wav"]
    assert result.exports == {}


def test_lanes_are_24_bit_full_length_numbered_and_replace_stale_ones(track, tmp_path):
    lanes = tmp_path / "song.lanes"
    lanes.mkdir()
    (lanes / "kick.wav").write_bytes(b"an older render's lane")
    write_outputs(track, tmp_path / "song.wav", exports=("lanes",))
    names = sorted(path.name for path in lanes.iterdir())
    assert names == [f"{number:02d}-{lane}.wav" for number, lane in enumerate(track.lanes, 1)]
    scale = 10 ** (lane_gain_db(track) / 20)
    for name in names:
        info = sf.info(lanes / name)
        assert (info.subtype, info.channels, info.frames) == ("PCM_24", 2, track.frames)
        audio, _ = sf.read(lanes / name, dtype="float32")
        assert 20 * np.log10(np.abs(audio).max()) <= LANE_PEAK_DB + 0.01
    kick = sf.read(next(lanes.glob("*-kick.wav")), dtype="float32")[0].T
    for start, part in track.lane_parts("kick"):  # the lane is what the mix added, scaled
        stop = start + part.shape[1]
        assert np.abs(kick[:, start:stop] - part * scale).max() < 2 ** -22
    assert leftovers(tmp_path) == []


def test_the_arrangement_picture_is_wide_and_drawn(track, tmp_path):
    write_outputs(track, tmp_path / "song.wav", exports=("png",))
    image = imread(tmp_path / "song.png")
    height, width = image.shape[:2]
    assert width >= 1400
    assert height >= 400
    colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 100  # lanes, blocks, labels, the curve and the spectrogram


def test_the_font_cache_lives_in_the_library_and_the_variable_does_not_leak(tmp_path):
    script = (
        "import os, sys, matplotlib\n"
        "from pathlib import Path\n"
        "from daemon.render.outputs.arrangement_png import import_matplotlib, use_picture_cache\n"
        "use_picture_cache(Path(sys.argv[1]))\n"
        "import_matplotlib()\n"
        "print(matplotlib.get_cachedir())\n"
        "print(os.environ.get('MPLCONFIGDIR', 'unset'))\n")
    env = {key: value for key, value in os.environ.items() if key != "MPLCONFIGDIR"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "mpl")], env=env,
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == [str(tmp_path / "mpl"), "unset"]


def test_an_unknown_export_is_refused_before_anything_is_written(track, tmp_path):
    with pytest.raises(RenderError, match="unknown export mp3"):
        write_outputs(track, tmp_path / "song.wav", exports=("png", "mp3"))
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_target_is_a_clear_error_and_leaves_nothing(track, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    with pytest.raises(RenderError, match=r"not-a-folder/song\.wav: cannot write"):
        write_outputs(track, blocker / "song.wav", exports=EXPORTS)
    assert list(tmp_path.iterdir()) == [blocker]


def test_a_failing_export_removes_the_outputs_already_written(track, tmp_path, monkeypatch):
    def full_disk(_track, target: Path) -> None:
        with atomic_output(target) as temp:  # as every writer does
            temp.write_bytes(b"half an archive")
            raise OSError(28, "No space left on device")

    monkeypatch.setitem(OUTPUTS, "dawproject", replace(OUTPUTS["dawproject"], write=full_disk))
    with pytest.raises(RenderError, match="song.dawproject: cannot write the dawproject "
                                          "output: No space left on device"):
        write_outputs(track, tmp_path / "song.wav", exports=EXPORTS)
    assert list(tmp_path.iterdir()) == []  # the WAV, picture, lanes and MIDI went again


def test_config_exports_are_validated_and_ordered(tmp_path):
    config = parse_config({"render": {"exports": ["dawproject", "wav", "png"]}}, base=tmp_path)
    assert config.render.exports == ("png", "dawproject")
    assert parse_config({}, base=tmp_path).render.exports == ("png",)
    with pytest.raises(ConfigError, match=r"render.exports: unknown export 'mp3'"):
        parse_config({"render": {"exports": ["png", "mp3"]}}, base=tmp_path)
    assert parse_exports(" MIDI, dawproject ,png", where="--export") == \
        ("png", "midi", "dawproject")
    with pytest.raises(ConfigError, match=r"--export: unknown export 'stems'"):
        parse_exports("midi,stems", where="--export")


def test_an_unknown_name_on_the_command_line_exits_3(tmp_path):
    (tmp_path / "config.toml").write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')
    done = subprocess.run([sys.executable, "-m", "daemon", "--config",
                           str(tmp_path / "config.toml"), "render", "techno", "-o",
                           str(tmp_path / "x.wav"), "--export", "dawproject,mp3"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 3
    assert "--export: unknown export 'mp3'" in done.stderr
    assert not (tmp_path / "x.wav").exists()


def test_a_prompt_export_line_chooses_outputs_without_changing_the_music():
    lexicon = load_rules(ROOT / "rules").lexicon
    text = "dark techno 130 bpm\nexport: dawproject, MIDI; stems\n"
    assert read_exports(text) == ("dawproject", "midi")
    assert read_exports("dark techno 130 bpm") is None
    assert read_exports("dark techno\nexport: none") == ()
    intent = parse_prompt(text, lexicon)
    assert intent.text == parse_prompt("dark techno 130 bpm", lexicon).text  # same seed
    assert any("unknown output 'stems'" in note for note in intent.notes)
    assert intent.tags == () and intent.genre == "techno"  # the line's words are not music


@pytest.mark.slow
def test_a_twenty_minute_track_exports_everything(synth_kit, tmp_path):
    """About 30 s of rendering and 4 GB of outputs: in `make test-all` and the bench only."""
    short = techno_plan(bpm=132.0)
    plan = replace(short, structure=short.structure * 28)  # 672 bars: 20 minutes 22 s
    library = kit_records(synth_kit, tmp_path / "TE Test Kit")
    track = render_track(plan, library, cache_dir=tmp_path / "cache")
    assert track.duration > 20 * 60
    result = write_outputs(track, tmp_path / "out" / "long.wav", exports=EXPORTS)
    assert leftovers(tmp_path) == []
    for lane in result.exports["lanes"].iterdir():
        assert sf.info(lane).frames == track.frames
    assert mido.MidiFile(result.exports["midi"]).length == pytest.approx(track.duration,
                                                                          abs=0.01)
    with zipfile.ZipFile(result.exports["dawproject"]) as bundle:
        xmlschema.XMLSchema(ROOT / "tests" / "data" / "dawproject" / "Project.xsd").validate(
            bundle.read("project.xml").decode("utf-8"))
        assert bundle.testzip() is None
