"""Drum one-shots (kick, snare, clap, hats, ride, metallic perc) and a four-on-the-floor loop.

Every generator takes keyword-only arguments, is deterministic for its `seed` (which only
nudges timbre, never the character) and returns finished float32 stereo ``(2, n)``.
"""

from __future__ import annotations

import numpy as np
import pedalboard

from daemon.synth.dsp import (
    LN_1000,
    apply_effects,
    butter,
    db_to_gain,
    decay_envelope,
    finish_loop,
    finish_oneshot,
    fold_to_length,
    loop_frames,
    rng_for,
    saturate,
    sine_wave,
    stereo,
)

#: The kick starts this many times above its tail pitch (e.g. 150 → 50 Hz).
KICK_SWEEP_RATIO = 3.0
#: Time constant of the kick's pitch drop; ~30 ms gives the "punch" without a laser zap.
KICK_SWEEP_SECONDS = 0.03
#: Time constant of the click transient.
CLICK_SECONDS = 0.002
#: TR-808 hi-hat oscillator bank (Hz): six detuned squares whose sum is metallic noise.
METAL_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)
#: Shared one-shot peak; drums are the loudest elements of a kit, as in commercial packs.
DRUM_PEAK_DB = -1.0
#: Drum loop grid: sixteenth notes.
STEPS_PER_BAR = 16


def synth_kick(
    *, sample_rate: int, seed: int, pitch_hz: float = 50.0, decay: float = 0.5,
    click: float = 0.5, drive: float = 0.0,
) -> np.ndarray:
    """Kick: sine with an exponential pitch drop, a noise click and optional tanh drive.

    `decay` is the time (s) to -60 dB, `click` and `drive` run 0..1.
    """
    rng = rng_for(seed, "kick")
    pitch = pitch_hz * rng.uniform(0.97, 1.03)
    frames = round(decay * sample_rate)
    t = np.arange(frames) / sample_rate
    freq = pitch * (1.0 + (KICK_SWEEP_RATIO - 1.0) * np.exp(-t / KICK_SWEEP_SECONDS))
    body = sine_wave(freq, sample_rate=sample_rate)
    body *= decay_envelope(frames, sample_rate=sample_rate, seconds=decay)
    noise = butter(rng.standard_normal(frames), sample_rate=sample_rate, cutoff=1500.0,
                   kind="highpass")
    transient = noise * np.exp(-t / CLICK_SECONDS)
    transient /= np.max(np.abs(transient))
    x = body + 0.5 * click * transient
    if drive > 0.0:
        # Distortion adds odd harmonics of the body; the low-pass keeps fizz off the top.
        x = butter(saturate(x, drive=drive), sample_rate=sample_rate, cutoff=6000.0,
                   kind="lowpass")
    return finish_oneshot(x, sample_rate=sample_rate, peak_db=DRUM_PEAK_DB)


def synth_snare(
    *, sample_rate: int, seed: int, tone_hz: float = 185.0, decay: float = 0.22,
    snappy: float = 0.6,
) -> np.ndarray:
    """Snare: two drum-head modes (ratio 1.6) plus band-passed noise wires, small room."""
    rng = rng_for(seed, "snare")
    tone = tone_hz * rng.uniform(0.97, 1.03)
    frames = round((decay + 0.15) * sample_rate)
    t = np.arange(frames) / sample_rate
    drop = 1.0 + 0.25 * np.exp(-t / 0.01)  # head pitch settles within ~10 ms of the hit
    body = sum(sine_wave(tone * ratio * drop, sample_rate=sample_rate) * weight
               for ratio, weight in ((1.0, 1.0), (1.6, 0.5)))
    body *= decay_envelope(frames, sample_rate=sample_rate, seconds=decay * 0.6)
    wires = butter(rng.standard_normal(frames), sample_rate=sample_rate,
                   cutoff=(1800.0, 9000.0), kind="bandpass")
    wires *= decay_envelope(frames, sample_rate=sample_rate, seconds=decay)
    x = (1.0 - snappy) * body + snappy * 2.0 * wires
    room = pedalboard.Reverb(room_size=0.2, damping=0.6, wet_level=0.12, dry_level=0.9)
    return finish_oneshot(apply_effects(stereo(x), [room], sample_rate=sample_rate),
                          sample_rate=sample_rate, peak_db=DRUM_PEAK_DB)


def synth_clap(
    *, sample_rate: int, seed: int, spread: float = 0.011, decay: float = 0.3,
) -> np.ndarray:
    """Clap: three quick noise bursts `spread` s apart, then a longer burst; wide room."""
    rng = rng_for(seed, "clap")
    frames = round((3 * spread + decay + 0.2) * sample_rate)
    t = np.arange(frames) / sample_rate
    envelope = np.zeros(frames)
    for burst in range(4):
        onset = burst * spread * rng.uniform(0.85, 1.15)
        # Three slaps with a 4 ms time constant, then the burst that carries the body.
        tau = decay / LN_1000 if burst == 3 else 0.004
        shape = np.exp(-np.clip(t - onset, 0.0, None) / tau) * (t >= onset)
        envelope = np.maximum(envelope, shape)
    noise = butter(rng.standard_normal(frames), sample_rate=sample_rate,
                   cutoff=(900.0, 5000.0), kind="bandpass")
    room = pedalboard.Reverb(room_size=0.35, damping=0.5, wet_level=0.25, dry_level=0.85,
                             width=1.0)
    wet = apply_effects(stereo(noise * envelope), [room], sample_rate=sample_rate)
    return finish_oneshot(wet, sample_rate=sample_rate, peak_db=DRUM_PEAK_DB)


def synth_hihat(
    *, sample_rate: int, seed: int, decay: float = 0.08, tone: float = 1.0,
) -> np.ndarray:
    """Hi-hat: 808-style square bank plus noise, high-passed at 7 kHz, exponential decay.

    `decay` (s to -60 dB) makes it closed (~0.08) or open (~0.5); `tone` scales the bank.
    """
    rng = rng_for(seed, "hihat")
    frames = round(decay * sample_rate)
    metal = _metal(frames, sample_rate=sample_rate, rng=rng, scale=tone * rng.uniform(0.97, 1.03))
    bright = butter(metal, sample_rate=sample_rate, cutoff=7000.0, kind="highpass", order=4)
    x = bright * decay_envelope(frames, sample_rate=sample_rate, seconds=decay)
    return finish_oneshot(x, sample_rate=sample_rate, peak_db=-3.0)


def synth_ride(
    *, sample_rate: int, seed: int, decay: float = 2.0, bell: float = 0.4,
) -> np.ndarray:
    """Ride cymbal: a higher metal bank with a long wash and a short inharmonic bell ping."""
    rng = rng_for(seed, "ride")
    frames = round(decay * sample_rate)
    t = np.arange(frames) / sample_rate
    wash = butter(_metal(frames, sample_rate=sample_rate, rng=rng, scale=1.9),
                  sample_rate=sample_rate, cutoff=3500.0, kind="highpass", order=4)
    wash *= decay_envelope(frames, sample_rate=sample_rate, seconds=decay)
    partials = (3150.0, 4410.0, 5890.0)  # inharmonic bell ratios 1 : 1.4 : 1.87
    ping = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in partials)
    ping *= decay_envelope(frames, sample_rate=sample_rate, seconds=decay * 0.3)
    x = wash / np.max(np.abs(wash)) + bell * ping / len(partials)
    return finish_oneshot(x, sample_rate=sample_rate, peak_db=-3.0)


def synth_metal_perc(
    *, sample_rate: int, seed: int, pitch_hz: float = 820.0, decay: float = 0.25,
    index: float = 4.0,
) -> np.ndarray:
    """Metallic perc: FM with an inharmonic (√2) modulator whose index decays fast."""
    rng = rng_for(seed, "perc")
    pitch = pitch_hz * rng.uniform(0.95, 1.05)
    frames = round((decay + 0.2) * sample_rate)
    t = np.arange(frames) / sample_rate
    modulation = index * np.exp(-t / 0.04) * np.sin(2 * np.pi * pitch * np.sqrt(2.0) * t)
    x = np.sin(2 * np.pi * pitch * t + modulation)
    x *= decay_envelope(frames, sample_rate=sample_rate, seconds=decay)
    room = pedalboard.Reverb(room_size=0.3, wet_level=0.2, dry_level=0.9, width=1.0)
    return finish_oneshot(apply_effects(stereo(x), [room], sample_rate=sample_rate),
                          sample_rate=sample_rate, peak_db=-2.0)


def synth_drum_loop(*, sample_rate: int, bpm: float, bars: int, seed: int) -> np.ndarray:
    """Four-on-the-floor loop: kick on beats, clap on 2 and 4, offbeat hats, ghost hats.

    Exactly `bars` bars long; hit tails past the end wrap onto the start.
    """
    rng = rng_for(seed, "drum_loop")
    frames = loop_frames(sample_rate=sample_rate, bpm=bpm, bars=bars)
    voices = {
        "kick": synth_kick(sample_rate=sample_rate, seed=seed, pitch_hz=52.0, decay=0.4,
                           click=0.6, drive=0.1),
        "clap": synth_clap(sample_rate=sample_rate, seed=seed),
        "hat": synth_hihat(sample_rate=sample_rate, seed=seed, decay=0.07),
    }
    longest = max(v.shape[-1] for v in voices.values())
    mix = np.zeros((2, frames + longest))
    step_frames = frames / (bars * STEPS_PER_BAR)
    for voice, step, gain_db in _drum_pattern(bars=bars, rng=rng):
        start = round(step * step_frames)
        hit = voices[voice]
        mix[:, start:start + hit.shape[-1]] += db_to_gain(gain_db) * hit
    return finish_loop(fold_to_length(mix, frames), sample_rate=sample_rate, peak_db=DRUM_PEAK_DB)


def _drum_pattern(*, bars: int, rng: np.random.Generator) -> list[tuple[str, int, float]]:
    """(voice, sixteenth step, gain dB) hits; the seed only moves the quiet ghost hats."""
    hits = []
    for bar in range(bars):
        base = bar * STEPS_PER_BAR
        hits += [("kick", base + step, 0.0) for step in (0, 4, 8, 12)]
        hits += [("clap", base + step, -4.0) for step in (4, 12)]
        hits += [("hat", base + step, -5.0) for step in (2, 6, 10, 14)]
        hits += [("hat", base + step, -17.0) for step in (1, 3, 5, 7, 9, 11, 13, 15)
                 if rng.random() < 0.4]
    return hits


def _metal(frames: int, *, sample_rate: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Sum of the six 808 squares (scaled by `scale`) plus a little white noise."""
    t = np.arange(frames) / sample_rate
    squares = sum(np.sign(np.sin(2 * np.pi * f * scale * t + rng.uniform(0, 2 * np.pi)))
                  for f in METAL_HZ)
    return squares / len(METAL_HZ) + 0.3 * rng.standard_normal(frames)
