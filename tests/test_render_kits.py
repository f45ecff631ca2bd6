"""Renders from a library of several kits, through the engine: kits as first-class things.

A library of synthesised kits named like commercial packs, one whose every key label lies
(G minor named D minor) and one holding a vinyl-crackle bed named like a hi-hat. Each render is
judged by the synthesiser's truth, not by the engine's labels, and on its audio: tonal loops in
the plan's scale, the noise bed out of the drums, the kick leading a four-on-the-floor groove,
and the report saying why each lane plays what it plays. Bad input renders with notes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from stored_kits import NOISE_HAT, kit_samples, make_engine, store_kit

from daemon.cli import main
from daemon.keys import parse_key, relative_key
from daemon.render.master import integrated_loudness

# The fidelity bench's measure judges the rendered audio, independently of the renderer's own.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from fidelity import kick_leads  # noqa: E402

LIBRARY = {  # kit → (bpm, true key, seed, claimed key, noise hat)
    "Warehouse Techno Vol 1": (138.0, "A minor", 1, None, False),
    "Chicago House Grooves": (124.0, "G minor", 2, None, False),
    "Trance Anthems": (138.0, "G minor", 3, "D minor", False),
    "Lo-Fi Beats Tape": (85.0, "F major", 4, None, True),
}


def samples_of(kit: str):
    bpm, key, seed, claimed, noise = LIBRARY[kit]
    return kit_samples(bpm, key, seed, claimed_key=claimed, noise_hat=noise)


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio")
    engine = make_engine(root)
    for kit in LIBRARY:
        store_kit(engine, kit, samples_of(kit), claimed_key=LIBRARY[kit][3])
    yield engine, root
    engine.close()


def render(studio, prompt: str, name: str, **options) -> tuple[dict, np.ndarray, int]:
    engine, root = studio
    engine.render_text(prompt, out_wav=root / f"{name}.wav", seed=5, **options)
    audio, rate = sf.read(root / f"{name}.wav", dtype="float32", always_2d=True)
    return json.loads((root / f"{name}.json").read_text()), audio.T, rate


def in_scale(true_key: str, semitones: int, plan_key: str) -> bool:
    """The shifted loop's key is the plan's key or its relative (the same notes)."""
    tonic, mode = parse_key(true_key)
    shifted = ((tonic + semitones) % 12, mode)
    plan = parse_key(plan_key)
    return shifted == plan or relative_key(*shifted) == plan


def test_a_kit_whose_key_labels_lie_plays_in_the_plans_scale(studio):
    report, _, _ = render(studio, "uplifting trance 138 bpm, 1 minute", "trance")
    plan_key = report["plan"]["key"]
    assert plan_key == "G minor"  # the backbone's key as heard, not as labelled
    truth = {(kit, s.name): s for kit in LIBRARY for s in samples_of(kit)}
    played = [(stem, truth[(stem["kit"], stem["file"])]) for stem in report["stems"]]
    tonal = [(stem, sample) for stem, sample in played if sample.key and sample.kind == "loop"]
    assert any(stem["kit"] == "Trance Anthems" for stem, _ in tonal)
    for stem, sample in tonal:
        assert in_scale(sample.key, stem["semitones"], plan_key), stem
    overrides = report["selection"]["overrides"]
    lied = {item["file"] for item in overrides if item["check"] == "key"
            and item["kit"] == "Trance Anthems" and item["action"].startswith("played")}
    assert lied and all(item["label"] == "D minor" and item["played_as"] == "G minor"
                        for item in overrides if item["file"] in lied)
    assert report["selection"]["backbone"]["kits"] == ["Trance Anthems"]


def test_a_noise_bed_named_like_a_hi_hat_never_plays_a_drum_lane(studio):
    report, _, _ = render(studio, "lo-fi hip hop 85 bpm with hi-hats, 1 minute", "lofi")
    assert report["selection"]["backbone"]["kits"] == ["Lo-Fi Beats Tape"]
    assert not [stem for stem in report["stems"] if stem["file"] == NOISE_HAT]
    assert any(item["check"] == "role" and item["file"] == NOISE_HAT
               for item in report["selection"]["overrides"])
    assert {stem["kit"] for stem in report["stems"]} == {"Lo-Fi Beats Tape"}


def test_the_kick_leads_a_four_on_the_floor_groove(studio):
    report, audio, rate = render(studio, "driving techno 138 bpm, 1 minute", "techno",
                                 exports=("lanes",))
    bpm = report["plan"]["bpm"]
    assert report["plan"]["four_on_floor"]
    # The genre's percussion pattern (five hits a bar) out-pulsed the kick: left out there;
    # the clap's backbeat, on 2 and 4 with the kick, was lowered.
    assert "perc left out of Build: it pulses at 172.5 BPM against the kick's 138" in (
        report["notes"])
    assert "clap -6 dB: its backbeat out-pulsed the kick" in report["notes"]
    starts = [s["start_seconds"] for s in report["sections"]] + [audio.shape[1] / rate]
    judged = []
    for index, section in enumerate(report["sections"]):
        lanes = {stem["lane"] for stem in report["stems"] if stem["section"] == section["section"]}
        if "kick" not in lanes:
            continue
        begin, end = (round(t * rate) for t in starts[index:index + 2])
        pulse = kick_leads(audio[:, begin:end], rate, bpm=bpm)[1]
        judged.append((section["section"], pulse))
        if lanes <= {"kick", "hihat", "atmo"}:  # the DJ edges: the kick leads outright
            assert abs(pulse / bpm - 1) < 0.03, (section, pulse)
        else:  # with a clap on 2 and 4 the backbeat may pulse as strongly: never off the beat
            assert min(abs(pulse / (bpm * f) - 1) for f in (1.0, 0.5)) < 0.03, (section, pulse)
    assert len(judged) >= 3
    lanes = studio[1] / "techno.lanes"
    loudness = {path.stem: integrated_loudness(sf.read(path, dtype="float32")[0].T, rate)
                for path in lanes.glob("*.wav")}
    kick = next(value for name, value in loudness.items() if name.endswith("kick"))
    percussion = {"hihat", "clap", "snare", "perc", "cymbal", "tom", "drum_loop"}
    louder = [name for name, value in loudness.items()
              if any(name.endswith(part) for part in percussion) and value > kick]
    assert not louder, loudness


def test_plan_explain_shows_each_lane_its_breakdown_and_runner_up(studio, capsys):
    config = str(studio[1] / "config.toml")
    assert main(["plan", "--explain", "--json", "driving techno 138 bpm", "--config",
                 config]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["plan"]["genre"] == "techno"
    lanes = data["selection"]["lanes"]
    assert {lane["lane"] for lane in lanes} >= {"kick", "hihat", "bass"}
    for lane in lanes:
        assert {"genre", "kit", "tempo", "key", "chroma", "role", "similarity"} <= set(
            lane["chosen"]["scores"])
        assert "runner_up" in lane
    assert data["selection"]["backbone"]["kits"] == ["Warehouse Techno Vol 1"]
    assert main(["plan", "--explain", "driving techno 138 bpm", "--config", config]) == 0
    text = capsys.readouterr().out
    assert "backbone: Warehouse Techno Vol 1 (family techno)" in text
    assert re.search(r"^kick +from Intro.*: Warehouse Techno Vol 1/Drums/Kicks/", text, re.M)
    assert "runner-up: " in text and "genre 1.00 kit 1.00" in text


@pytest.fixture
def lone_engine(tmp_path):
    engine = make_engine(tmp_path)
    yield engine
    engine.close()


def test_a_library_of_one_kit_serves_a_genre_it_is_not_with_a_note(lone_engine, tmp_path):
    store_kit(lone_engine, "Warehouse Techno Vol 1", samples_of("Warehouse Techno Vol 1"))
    outcome = lone_engine.render_text("deep house 122 bpm, 1 minute",
                                      out_wav=tmp_path / "house.wav", seed=2)
    report = json.loads(outcome.report.read_text())
    assert report["fallbacks"][0].startswith("no kit of the house family in the library; the "
                                             "closest kit, Warehouse Techno Vol 1 (techno), "
                                             "serves")
    assert {stem["kit"] for stem in report["stems"]} == {"Warehouse Techno Vol 1"}


def test_a_library_without_tonal_stems_renders_its_drums_with_notes(lone_engine, tmp_path):
    drums = tuple(s for s in samples_of("Warehouse Techno Vol 1") if not s.key)
    store_kit(lone_engine, "Warehouse Techno Drums", drums)
    outcome = lone_engine.render_text("techno 138 bpm, 1 minute",
                                      out_wav=tmp_path / "drums.wav", seed=2)
    report = json.loads(outcome.report.read_text())
    assert {stem["category"] for stem in report["stems"]} <= {
        "kick", "hihat", "clap", "snare", "cymbal", "perc", "tom", "drum_loop", "fx"}
    assert any(note.startswith("bass: none in library") for note in report["fallbacks"])
    assert report["selection"]["backbone"]["kits"] == ["Warehouse Techno Drums"]
