"""Roles guarded (daemon.render.roles): a one-shot plays a lane only if its audio is plausible
for the part. A crackle bed named like a hi-hat is no hi-hat, a pad named like a kick no kick."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from render_helpers import fake_record, settings

from daemon.categories import load_categories
from daemon.compose.plan import Plan, Section, StemQuery
from daemon.ingest.features import prepare
from daemon.render.roles import check_role, shape_problems
from daemon.render.select import select_stems
from daemon.synth import drums, tonal
from daemon.synth.fx import synth_crackle

TABLE = load_categories(Path(__file__).resolve().parents[1] / "rules")
RATE = 44100


def described(number: int, category: str, audio: np.ndarray, name: str, *,
              confidence: float = 0.95):
    """A hand-built record carrying the ingest's descriptors of `audio`."""
    stem = fake_record(number, category, duration=audio.shape[1] / RATE)
    return replace(stem, rel_path=name, category_confidence=confidence,
                   descriptors=prepare(audio=audio, sample_rate=RATE).descriptors)


CRACKLE = synth_crackle(sample_rate=RATE, seconds=4.0, seed=3)
HAT = drums.synth_hihat(sample_rate=RATE, seed=3, decay=0.08)
KICK = drums.synth_kick(sample_rate=RATE, seed=3, pitch_hz=52.0, decay=0.35, click=0.7)
PAD = tonal.synth_pad_loop(sample_rate=RATE, bpm=128.0, key="A minor", bars=1, seed=3)


def test_a_noise_bed_is_no_hit_and_a_pad_is_no_kick():
    hihat, kick = TABLE["hihat"].shape, TABLE["kick"].shape
    crackle = prepare(audio=CRACKLE, sample_rate=RATE).descriptors
    problems = shape_problems(crackle, hihat)
    assert any("no decay" in problem for problem in problems)
    assert any("attacks" in problem for problem in problems)
    assert shape_problems(prepare(audio=HAT, sample_rate=RATE).descriptors, hihat) == []
    assert shape_problems(prepare(audio=KICK, sample_rate=RATE).descriptors, kick) == []
    pad = prepare(audio=PAD, sample_rate=RATE).descriptors
    assert shape_problems(pad, kick)  # no decay and no body below 150 Hz
    assert shape_problems({}, kick) == []  # nothing known, nothing held against it


def test_the_role_score_follows_the_category_confidence():
    sure = described(1, "hihat", HAT, "HiHat_01.wav")
    doubtful = replace(sure, id=2, category_confidence=0.3)
    assert check_role(sure, TABLE["hihat"].shape).score > check_role(
        doubtful, TABLE["hihat"].shape).score
    bed = described(3, "hihat", CRACKLE, "HiHat_Dusty_03.wav")
    check = check_role(bed, TABLE["hihat"].shape)
    assert not check.plausible and check.score == 0.0 and "no decay" in check.reason


def test_a_crackle_named_like_a_hi_hat_never_plays_the_hi_hat_lane():
    bed = described(1, "hihat", CRACKLE, "Drums/HiHats/TE_HiHat_Dusty_03.wav")
    hat = described(2, "hihat", HAT, "Drums/HiHats/TE_HiHat_Closed_01.wav", confidence=0.5)
    plan = Plan(prompt="lofi", genre="lofi", bpm=85.0, key="F major", seed=1,
                structure=(Section("Verse", 8, 0.7, (StemQuery("hihat", ("dusty",)),)),))
    selection = select_stems(plan, [bed, hat], settings=settings(), categories=TABLE)
    assert [pick.stem.id for pick in selection.picks] == [2]  # the doubtful real hat
    role = [item for item in selection.explanation["overrides"] if item["check"] == "role"]
    assert role == [{"check": "role", "stem_id": 1, "kit": "Kit A",
                     "file": "Drums/HiHats/TE_HiHat_Dusty_03.wav", "label": "hihat",
                     "lane": "hihat", "reason": role[0]["reason"],
                     "action": "not used as hihat"}]
    alone = select_stems(plan, [bed], settings=settings(), categories=TABLE)
    assert alone.picks == ()
    assert alone.fallbacks == ("hihat: no hihat whose audio fits the part; lane left out",)


def test_a_pad_named_kick_does_not_play_the_kick():
    pad = described(1, "kick", PAD, "Kicks/Kick_Pad_Lush.wav")
    kick = described(2, "kick", KICK, "Kicks/Kick_Punchy.wav")
    plan = Plan(prompt="techno", genre="techno", bpm=128.0, key="A minor", seed=1,
                structure=(Section("Drop", 8, 1.0, (StemQuery("kick", ("lush",)),)),))
    selection = select_stems(plan, [pad, kick], settings=settings(), categories=TABLE)
    assert [pick.stem.id for pick in selection.picks] == [2]
