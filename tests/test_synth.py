"""The synthesiser: clean audio, exact loop lengths, spectra, key, tempo, names, writers."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter

import librosa
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy import signal

from daemon.errors import PlanError
from daemon.keys import parse_key
from daemon.synth import (
    bpm_token,
    ground_truth,
    key_token,
    synthesize_kit,
    write_demo_kit,
    write_kit_zip,
)
from daemon.synth.drums import synth_drum_loop, synth_hihat, synth_kick
from daemon.synth.fx import synth_riser
from daemon.synth.kit import RECIPES
from daemon.synth.tonal import synth_arp_loop, synth_bass_loop, synth_drone_loop, synth_pad_loop

SR = 44100
MINUS_1_DBFS = 10 ** (-1 / 20)
RECIPE_IDS = [recipe.title for recipe in RECIPES]
ALL_SAMPLES = pytest.mark.parametrize("index", range(len(RECIPES)), ids=RECIPE_IDS)


def mono(audio: np.ndarray) -> np.ndarray:
    return audio.mean(axis=0).astype(np.float64)


def band_ratio(audio: np.ndarray, *, sample_rate: int, low: float, high: float) -> float:
    """Share of spectral energy between `low` and `high` Hz."""
    power = np.abs(np.fft.rfft(mono(audio))) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1 / sample_rate)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power.sum())


def chroma_profile(audio: np.ndarray, *, sample_rate: int) -> np.ndarray:
    """Time-summed CQT chroma (index 0 = C) at 22.05 kHz."""
    y = librosa.resample(mono(audio), orig_sr=sample_rate, target_sr=22050)
    return librosa.feature.chroma_cqt(y=y, sr=22050).sum(axis=1)


def tempo_of(audio: np.ndarray, *, sample_rate: int) -> float:
    # hop 128 at 22.05 kHz (5.8 ms) makes the tempogram's lag grid fine enough for 1 %.
    y = librosa.resample(mono(audio), orig_sr=sample_rate, target_sr=22050)
    return float(librosa.feature.tempo(y=y, sr=22050, hop_length=128)[0])


def assert_tempo(found: float, bpm: float) -> None:
    """Within 1 % of `bpm`, or of half or double it (a tracker may count a metric level off)."""
    assert min(abs(found - bpm * f) / (bpm * f) for f in (0.5, 1.0, 2.0)) < 0.01, (found, bpm)


def sample(kit, title: str):
    return kit[RECIPE_IDS.index(title)]


# --- the kit as a whole ----------------------------------------------------------------


def test_kit_has_every_required_sound(synth_kit):
    counts = Counter((s.category, s.kind) for s in synth_kit)
    assert counts[("kick", "oneshot")] == 3
    assert counts[("snare", "oneshot")] == 1 and counts[("clap", "oneshot")] == 1
    assert counts[("hihat", "oneshot")] == 2
    assert counts[("cymbal", "oneshot")] == 1 and counts[("perc", "oneshot")] == 1
    assert counts[("bass", "loop")] >= 2
    assert counts[("pad", "loop")] == 1 and counts[("arp", "loop")] == 1
    assert counts[("atmo", "loop")] == 1 and counts[("drum_loop", "loop")] == 1
    assert counts[("fx", "oneshot")] >= 1
    assert len({s.name for s in synth_kit}) == len(synth_kit)


def test_loops_carry_tempo_and_tonal_loops_carry_key(synth_kit, kit_spec):
    for s in synth_kit:
        assert s.bpm == (kit_spec["bpm"] if s.kind == "loop" else None), s.name
        tonal = s.category in {"bass", "pad", "arp", "atmo"}
        assert s.key == (kit_spec["key"] if tonal else None), s.name


@ALL_SAMPLES
def test_audio_is_clean(synth_kit, index):
    s = synth_kit[index]
    assert s.audio.dtype == np.float32 and s.audio.shape[0] == 2 and s.sample_rate == SR
    assert np.isfinite(s.audio).all()
    assert np.max(np.abs(s.audio)) <= MINUS_1_DBFS + 1e-6
    assert np.max(np.abs(s.audio.mean(axis=1))) < 1e-3


@ALL_SAMPLES
def test_one_shots_fade_out_and_loops_have_no_seam(synth_kit, index):
    s = synth_kit[index]
    if s.kind == "oneshot":
        assert np.max(np.abs(s.audio[:, -1])) < 1e-6 and np.max(np.abs(s.audio[:, 0])) < 1e-6
    else:
        # Looping joins the last sample to the first: that step must be no bigger than
        # the loop's own large steps (a broken seam is a click far above them).
        steps = np.abs(np.diff(s.audio, axis=1))
        seam = np.max(np.abs(s.audio[:, 0] - s.audio[:, -1]))
        assert seam <= np.percentile(steps, 99.9), (seam, np.percentile(steps, 99.9))


def test_loudness_is_sample_pack_like(synth_kit):
    measured = 0
    for s in synth_kit:
        if s.audio.shape[-1] < 0.5 * s.sample_rate:
            continue  # integrated loudness needs whole 400 ms blocks
        lufs = pyloudnorm.Meter(s.sample_rate).integrated_loudness(s.audio.T.astype(np.float64))
        # Loops sit at -18..-6 LUFS like commercial packs; sparse one-shots read quieter.
        low, high = (-18.0, -6.0) if s.kind == "loop" else (-26.0, -8.0)
        assert low <= lufs <= high, (s.name, lufs)
        measured += 1
    assert measured >= 12


def test_kicks_live_below_150_hz_and_hats_above_5_khz(synth_kit):
    for s in synth_kit:
        if s.category == "kick":
            assert band_ratio(s.audio, sample_rate=SR, low=0, high=150) > 0.8, s.name
        if s.category == "hihat":
            assert band_ratio(s.audio, sample_rate=SR, low=5000, high=SR) > 0.9, s.name
        if s.category == "bass":
            assert band_ratio(s.audio, sample_rate=SR, low=0, high=400) > 0.7, s.name
        if s.category == "pad":  # low-pass filtered
            assert band_ratio(s.audio, sample_rate=SR, low=5000, high=SR) < 0.01, s.name


# --- individual sound design ---------------------------------------------------------


def test_kick_pitch_drops_from_about_three_times_its_tail_pitch():
    kick = mono(synth_kick(sample_rate=SR, seed=0, pitch_hz=50.0, decay=0.5, click=0.0))
    body = signal.sosfilt(signal.butter(4, 400, "lowpass", fs=SR, output="sos"), kick)
    inst_hz = np.diff(np.unwrap(np.angle(signal.hilbert(body)))) * SR / (2 * np.pi)
    early = np.median(inst_hz[round(0.004 * SR):round(0.012 * SR)])
    late = np.median(inst_hz[round(0.15 * SR):round(0.3 * SR)])
    assert 40.0 < late < 60.0
    assert early > 1.8 * late


def test_hats_decay_exponentially_and_open_rings_longer():
    def time_to_minus_20_db(audio):
        rms = np.sqrt(np.convolve(mono(audio) ** 2, np.ones(64) / 64, mode="same"))
        peak = int(np.argmax(rms))
        below = np.nonzero(rms[peak:] < rms[peak] / 10)[0]
        return below[0] / SR

    closed = time_to_minus_20_db(synth_hihat(sample_rate=SR, seed=0, decay=0.08))
    opened = time_to_minus_20_db(synth_hihat(sample_rate=SR, seed=0, decay=0.5))
    # Exponential to -60 dB at `decay`: -20 dB after a third of it.
    assert closed == pytest.approx(0.08 / 3, rel=0.3)
    assert opened == pytest.approx(0.5 / 3, rel=0.3)


@pytest.mark.parametrize("style", ["rolling", "acid"])
def test_bass_filter_envelope_brightens_each_note_start(style):
    """The share of energy above 600 Hz is higher just after each sixteenth than later.

    Comparing shares (not energies) cancels the amplitude envelope; without a filter
    envelope the ratio is ~1.0-1.3.
    """
    audio = mono(synth_bass_loop(sample_rate=SR, bpm=128.0, key="A minor", bars=2, seed=0,
                                 style=style))
    bright = signal.sosfilt(signal.butter(4, 600, "highpass", fs=SR, output="sos"), audio)
    step = 60.0 / 128.0 / 4 * SR
    quarter = round(step / 4)  # both quarters lie inside every note's gate
    early = np.zeros(2)
    late = np.zeros(2)
    for k in range(32):
        start = round(k * step)
        for total, offset in ((early, 0), (late, quarter)):
            window = slice(start + offset, start + offset + quarter)
            total += (np.sum(bright[window] ** 2), np.sum(audio[window] ** 2))
    assert early[0] / early[1] > 1.5 * late[0] / late[1]


@pytest.mark.parametrize("rising", [True, False])
def test_riser_rises_and_downlifter_falls(rising):
    audio = mono(synth_riser(sample_rate=SR, bpm=128.0, bars=2, seed=0, rising=rising))
    quarter = audio.size // 4

    def centroid(part):
        return float(librosa.feature.spectral_centroid(y=part, sr=SR).mean())

    first, last = audio[:quarter], audio[-quarter:]
    louder, brighter = np.std(last) > 3 * np.std(first), centroid(last) > 2 * centroid(first)
    quieter, darker = np.std(first) > 3 * np.std(last), centroid(first) > 2 * centroid(last)
    assert (louder and brighter) if rising else (quieter and darker)


# --- exact lengths, key and tempo ------------------------------------------------------


@pytest.mark.parametrize(("bpm", "bars"), [(97.0, 2), (128.0, 1), (138.0, 2), (174.5, 3)])
def test_loops_are_exactly_bars_long(bpm, bars):
    expected = bars * 4 * 60.0 / bpm * SR
    tonal = dict(sample_rate=SR, bpm=bpm, key="C# minor", bars=bars, seed=4)
    loops = [
        synth_drum_loop(sample_rate=SR, bpm=bpm, bars=bars, seed=4),
        synth_bass_loop(**tonal, style="acid"),
        synth_bass_loop(**tonal, style="sub"),
        synth_pad_loop(**tonal),
        synth_arp_loop(**tonal),
        synth_drone_loop(**tonal),
        synth_riser(sample_rate=SR, bpm=bpm, bars=bars, seed=4),
    ]
    for audio in loops:
        assert abs(audio.shape[-1] - expected) <= 1


def test_kit_loops_match_requested_bars():
    kit = synthesize_kit(bpm=140.0, key="G major", seed=0, sample_rate=22050, bars=1)
    for s in kit:
        if s.kind == "loop":
            assert abs(s.audio.shape[-1] - 4 * 60.0 / 140.0 * 22050) <= 1, s.name


def test_kit_tonal_loops_peak_on_tonic_or_fifth(synth_kit, kit_spec):
    tonic, _ = parse_key(kit_spec["key"])
    for s in synth_kit:
        if s.key is not None:
            chroma = chroma_profile(s.audio, sample_rate=SR)
            assert int(np.argmax(chroma)) in {tonic, (tonic + 7) % 12}, s.name


@pytest.mark.parametrize("key", ["F# major", "D# minor"])
@pytest.mark.parametrize("style", ["rolling", "acid"])
def test_bass_chroma_follows_the_requested_key(key, style):
    tonic, _ = parse_key(key)
    audio = synth_bass_loop(sample_rate=SR, bpm=128.0, key=key, bars=2, seed=2, style=style)
    assert int(np.argmax(chroma_profile(audio, sample_rate=SR))) in {tonic, (tonic + 7) % 12}


@pytest.mark.parametrize("key", ["A minor", "F# major"])
def test_pad_contains_the_key_triad(key):
    tonic, mode = parse_key(key)
    triad = {tonic, (tonic + (3 if mode == "minor" else 4)) % 12, (tonic + 7) % 12}
    audio = synth_pad_loop(sample_rate=SR, bpm=128.0, key=key, bars=4, seed=0)
    strongest = set(np.argsort(chroma_profile(audio, sample_rate=SR))[-4:].tolist())
    assert triad <= strongest


@pytest.mark.parametrize("title", ["Drum_Loop_Driving", "Bass_Rolling", "Bass_Acid", "Arp_Pluck"])
def test_kit_loops_reveal_their_tempo(synth_kit, kit_spec, title):
    assert_tempo(tempo_of(sample(synth_kit, title).audio, sample_rate=SR), kit_spec["bpm"])


@pytest.mark.parametrize("bpm", [100.0, 138.0, 174.0])
def test_drum_and_rolling_bass_tempo_at_other_bpms(bpm):
    drums = synth_drum_loop(sample_rate=SR, bpm=bpm, bars=4, seed=3)
    bass = synth_bass_loop(sample_rate=SR, bpm=bpm, key="E minor", bars=4, seed=3)
    assert_tempo(tempo_of(drums, sample_rate=SR), bpm)
    assert_tempo(tempo_of(bass, sample_rate=SR), bpm)


# --- determinism and names -------------------------------------------------------------


def test_same_seed_same_kit_other_seed_other_sounds(synth_kit, kit_spec):
    again = synthesize_kit(**kit_spec)
    assert [s.name for s in again] == [s.name for s in synth_kit]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(again, synth_kit))
    other = synthesize_kit(**{**kit_spec, "seed": kit_spec["seed"] + 1})
    differ = sum(not np.array_equal(a.audio, b.audio) for a, b in zip(other, synth_kit))
    assert differ == len(synth_kit)


def test_descriptive_names_carry_category_bpm_and_key(synth_kit, kit_spec):
    for s in synth_kit:
        words = re.sub(r"[_/ ]+", " ", s.name.lower())
        assert s.category.replace("_", " ") in words, s.name
        tokens = set(re.split(r"[_/ .]+", s.name))
        assert (bpm_token(kit_spec["bpm"]) in tokens) == (s.kind == "loop"), s.name
        assert (key_token(kit_spec["key"]) in tokens) == (s.key is not None), s.name


def test_anonymous_names_reveal_nothing(anonymous_kit, synth_kit):
    names = [s.name for s in anonymous_kit]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"sample_\d\d\.wav", name) for name in names)
    assert names != sorted(names)  # shuffled: the order does not hint at the category
    # Same audio and truth as the descriptive kit; only the names differ.
    for anonymous, named in zip(anonymous_kit, synth_kit):
        assert np.array_equal(anonymous.audio, named.audio)
        assert (anonymous.category, anonymous.bpm, anonymous.key) == (
            named.category, named.bpm, named.key)


def test_tokens_and_request_validation():
    assert key_token("A minor") == "Am" and key_token("F# major") == "F#maj"
    assert bpm_token(128.0) == "128bpm" and bpm_token(127.5) == "127.5bpm"
    with pytest.raises(PlanError, match="key"):
        synthesize_kit(key="H minor")
    with pytest.raises(PlanError, match="bpm"):
        synthesize_kit(bpm=400.0)
    with pytest.raises(PlanError, match="bars"):
        synthesize_kit(bars=0)
    with pytest.raises(ValueError, match="names"):
        synthesize_kit(names="secret")
    with pytest.raises(ValueError, match="style"):
        synth_bass_loop(sample_rate=SR, bpm=120.0, key="A minor", bars=1, seed=0, style="wobble")


def test_ground_truth_is_json_ready_and_matches(synth_kit):
    truth = json.loads(json.dumps(ground_truth(synth_kit)))
    assert [t["name"] for t in truth] == [s.name for s in synth_kit]
    for entry, s in zip(truth, synth_kit):
        assert entry == {"name": s.name, "category": s.category, "kind": s.kind, "bpm": s.bpm,
                         "key": s.key, "tags": list(s.tags)}
        assert entry["tags"], s.name


# --- writing -----------------------------------------------------------------------------


def test_kit_folder_round_trips_as_24_bit_wav(kit_folder, synth_kit):
    files = sorted(p.relative_to(kit_folder).as_posix() for p in kit_folder.rglob("*")
                   if p.is_file())
    assert files == sorted(s.name for s in synth_kit)  # no .part leftovers
    for s in synth_kit:
        info = sf.info(kit_folder / s.name)
        assert (info.samplerate, info.channels, info.subtype) == (SR, 2, "PCM_24")
        data, _ = sf.read(kit_folder / s.name, dtype="float32", always_2d=True)
        np.testing.assert_allclose(data.T, s.audio, atol=2.0**-22)


def test_anonymous_kit_folder_is_flat(anonymous_kit_folder, anonymous_kit):
    assert sorted(p.name for p in anonymous_kit_folder.iterdir()) == sorted(
        s.name for s in anonymous_kit)


def test_kit_zip_is_readable_and_complete(kit_zip, synth_kit):
    assert [p.name for p in kit_zip.parent.iterdir()] == [kit_zip.name]
    with zipfile.ZipFile(kit_zip) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(s.name for s in synth_kit)
        for s in synth_kit:
            data, rate = sf.read(io.BytesIO(archive.read(s.name)), always_2d=True)
            assert rate == SR and data.shape == s.audio.T.shape


def test_failed_zip_write_keeps_the_old_zip_and_leaves_no_partial(tmp_path, synth_kit):
    dest = write_kit_zip(synth_kit[:2], tmp_path / "kit.zip")
    before = dest.read_bytes()
    with pytest.raises(ValueError):
        write_kit_zip(synth_kit, dest, subtype="NOT_A_SUBTYPE")
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["kit.zip"]


def test_demo_kit_lands_in_the_inbox_as_one_zip(tmp_path):
    inbox = tmp_path / "inbox"
    path = write_demo_kit(inbox, bpm=138.0, key="A minor", seed=0)
    assert path == inbox / "Traum Demo Kit 138 BPM Am.zip"
    assert [p.name for p in inbox.iterdir()] == [path.name]
    with zipfile.ZipFile(path) as archive:
        assert len(archive.namelist()) == len(RECIPES)
        assert any("138bpm_Am" in name for name in archive.namelist())
