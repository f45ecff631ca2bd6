"""End to end: a plan and the synthesised kit → a mastered WAV that meets the objective
checks (tempo, loudness, true peak, duration, clicks, energy curve, cues, report)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pedalboard
import pyloudnorm
import pytest
import soundfile as sf
from render_helpers import click_ratio, kit_records, settings, techno_plan
from scipy.signal import resample_poly
from scipy.stats import spearmanr
from track_helpers import render_files, render_track

from daemon.compose.plan import StemQuery, plan_to_dict
from daemon.errors import RenderError
from daemon.ingest.tempo import estimate_tempo
from daemon.render.export import read_cues

PLAN = techno_plan(bpm=132.0, extra=(StemQuery("vocal"),))  # the kit has no vocals
SETTINGS = settings()
EXPORTS = ("lanes",)


@pytest.fixture(scope="module")
def library(tmp_path_factory, synth_kit):
    return kit_records(synth_kit, tmp_path_factory.mktemp("library") / "TE Test Kit")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, library):
    folder = tmp_path_factory.mktemp("render")
    result = render_files(PLAN, library, out_wav=folder / "out" / "track.wav",
                          cache_dir=folder / "cache", exports=EXPORTS)
    audio, rate = sf.read(result.wav, dtype="float32")
    return {"result": result, "audio": audio.T, "rate": rate, "cache": folder / "cache",
            "report": json.loads(result.report.read_text())}


def section_bounds(rate: int) -> list[tuple[int, int]]:
    per_bar = rate * 240 / PLAN.bpm
    return [(round(start * per_bar), round((start + section.bars) * per_bar))
            for start, section in zip(PLAN.section_starts(), PLAN.structure)]


def test_tempo_of_the_mix_is_the_plan_tempo(rendered):
    bpm, _ = estimate_tempo(y=rendered["audio"].mean(axis=0), sample_rate=rendered["rate"],
                            min_bpm=60, max_bpm=200)
    assert bpm == pytest.approx(PLAN.bpm, rel=0.005)


def test_loudness_and_true_peak_meet_the_master_targets(rendered):
    audio, rate = rendered["audio"], rendered["rate"]
    lufs = pyloudnorm.Meter(rate).integrated_loudness(audio.T.astype(np.float64))
    assert lufs == pytest.approx(SETTINGS.target_lufs, abs=0.5)
    peak = 20 * np.log10(np.abs(resample_poly(audio, 4, 1, axis=1)).max())
    assert peak <= SETTINGS.true_peak_db
    assert rendered["result"].lufs == pytest.approx(lufs, abs=0.01)
    assert rendered["result"].true_peak_db == pytest.approx(peak, abs=0.01)


def test_file_format_and_duration(rendered):
    info = sf.info(rendered["result"].wav)
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_24")
    expected = PLAN.bars * 4 * 60 / PLAN.bpm + rendered["report"]["tail_seconds"]
    assert info.frames / info.samplerate == pytest.approx(expected, abs=0.010)
    assert rendered["result"].duration == pytest.approx(expected, abs=0.010)


def test_section_loudness_follows_the_energy_curve(rendered):
    audio = rendered["audio"]
    rms = [np.sqrt(np.mean(audio[:, start:stop] ** 2))
           for start, stop in section_bounds(rendered["rate"])]
    rho = spearmanr(rms, [section.energy for section in PLAN.structure]).statistic
    assert rho > 0.7


def test_cue_markers_name_each_section_start(rendered):
    cues = read_cues(rendered["result"].wav)
    assert [cue.label for cue in cues] == [section.section for section in PLAN.structure]
    assert [cue.position for cue in cues] == [start for start, _ in
                                              section_bounds(rendered["rate"])]


def test_no_click_where_a_lane_starts_or_stops(rendered):
    """Each lane's WAV at every section boundary where its stem starts, stops or changes."""
    report, rate = rendered["report"], rendered["rate"]
    bounds = section_bounds(rate)
    names = [section.section for section in PLAN.structure]
    playing: dict[str, dict[int, int]] = {}
    for choice in report["stems"]:
        playing.setdefault(choice["lane"], {})[names.index(choice["section"])] = \
            choice["stem_id"]
    lanes_dir = rendered["result"].wav.parent / "track.lanes"
    checked = 0
    for lane, by_section in playing.items():
        (path,) = lanes_dir.glob(f"[0-9][0-9]-{lane}.wav")
        audio, _ = sf.read(path, dtype="float32")
        assert audio.shape[0] == rendered["audio"].shape[1]
        for index in range(len(names) + 1):
            before, after = by_section.get(index - 1), by_section.get(index)
            if before == after and lane != "fx":
                continue
            position = bounds[index][0] if index < len(names) else bounds[-1][1]
            assert click_ratio(audio.T, position) < 4.0, (lane, names[min(index, 4)])
            checked += 1
    assert checked >= 15
    assert click_ratio(rendered["audio"], 1) < 4.0
    assert np.abs(rendered["audio"][:, -1]).max() < 1e-3  # the track fades out


def test_report_records_plan_choices_measures_and_fallbacks(rendered):
    report, result = rendered["report"], rendered["result"]
    assert report["plan"] == plan_to_dict(PLAN)
    assert report["measured"]["duration_seconds"] == pytest.approx(result.duration)
    assert report["measured"]["lufs"] == pytest.approx(result.lufs, abs=1e-3)
    assert "vocal: none in library; lane left out" in report["fallbacks"]
    assert list(result.fallbacks) == report["fallbacks"]
    assert len(report["stems"]) == len(result.choices)
    first = report["stems"][0]
    assert set(first) == {"stem_id", "kit", "file", "section", "lane", "category",
                          "stretch_ratio", "semitones", "gain_db"}
    by_lane = {(c["section"], c["lane"]): c for c in report["stems"]}
    bass = by_lane[("Drop", "bass")]
    assert bass["file"] == "Bass Loops/TE_Bass_Rolling_128bpm_Am.wav"  # tag "rolling"
    assert bass["stretch_ratio"] == pytest.approx(132 / 128)
    assert by_lane[("Build", "bass")]["stem_id"] == bass["stem_id"]  # same bass throughout
    assert by_lane[("Drop", "hihat")]["stem_id"] != by_lane[("Drop", "hihat2")]["stem_id"]
    assert by_lane[("Build", "fx")]["file"].startswith("FX/TE_FX_Riser")
    assert by_lane[("Drop", "kick")]["gain_db"] > by_lane[("Build", "kick")]["gain_db"]
    assert any("sweep" in note for note in report["notes"])
    names = sorted(p.stem for p in (result.wav.parent / "track.lanes").iterdir())
    assert [name.split("-", 1)[0] for name in names] == [f"{n:02d}" for n in
                                                         range(1, len(names) + 1)]
    assert sorted(name.split("-", 1)[1] for name in names) == \
        sorted({c["lane"] for c in report["stems"]})
    assert any(note.startswith("lanes: track.lanes") for note in report["notes"])


def test_second_render_hits_the_cache_and_is_identical(rendered, library, tmp_path,
                                                        monkeypatch):
    calls = []
    stretch = pedalboard.time_stretch
    monkeypatch.setattr(pedalboard, "time_stretch",
                        lambda *a, **k: calls.append(k) or stretch(*a, **k))
    result = render_files(PLAN, library, out_wav=tmp_path / "again.wav",
                          cache_dir=rendered["cache"], exports=EXPORTS)
    assert [k for k in calls if "transient_mode" in k] == []  # every stem came from the cache
    assert result.wav.read_bytes() == rendered["result"].wav.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.json", "again.lanes",
                                                          "again.wav"]


def test_empty_or_missing_library_is_a_clear_error(tmp_path, library):
    with pytest.raises(RenderError, match="no usable stems"):
        render_track(PLAN, [], cache_dir=tmp_path / "cache")
    gone = [replace(stem, path=tmp_path / "gone.wav") for stem in library]
    with pytest.raises(RenderError, match="no usable stems"):
        render_track(PLAN, gone, cache_dir=tmp_path / "cache")
    loops = [stem for stem in library if stem.kind == "loop"]
    with pytest.raises(RenderError, match="none of the 7 stems in the library fits"):
        render_track(replace(PLAN, bpm=180.0), loops, cache_dir=tmp_path / "cache")
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "cache"])  # nothing was written
