"""Tonal loops: bass (rolling, acid, sub), pad, arp and atmo drone, all in a given key.

Monophonic lines are rendered by `render_line` from `music.Note` patterns through one
oscillator, a resonant filter with a per-note envelope and an amplitude envelope.
Every loop is exactly `bars` bars long and loops seamlessly (tails wrap to the start).
Keys are canonical (``"A minor"``); a malformed key raises `PlanError`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pedalboard

from daemon.synth import music
from daemon.synth.dsp import (
    LN_1000,
    apply_effects,
    finish_loop,
    fold_to_length,
    loop_frames,
    midi_to_hz,
    periodic_hz,
    process_circular,
    rng_for,
    saturate,
    saw_wave,
    sine_wave,
    stereo,
    sweep_lowpass,
)

WAVES = {"saw": saw_wave, "sine": sine_wave}
#: Reverb and delay memory that circular processing must cover (s).
EFFECT_TAIL_SECONDS = 3.0


@dataclass(frozen=True)
class Voice:
    """A monosynth patch. Times in seconds; decays are times to -60 dB.

    The filter rests at `cutoff_hz` and each triggered note opens it by `env_octaves`
    (plus `accent_octaves` on accents), decaying over `env_seconds`. `decay` makes the
    amplitude fall during the gate (plucks); None holds it (basses).
    """

    wave: str  # a key of WAVES
    cutoff_hz: float
    env_octaves: float
    env_seconds: float
    resonance: float
    attack: float = 0.003
    release: float = 0.03
    decay: float | None = None
    glide: float = 0.05
    accent_octaves: float = 1.0


BASS_STYLES = {
    "rolling": (music.rolling_bass,
                Voice("saw", cutoff_hz=130.0, env_octaves=2.5, env_seconds=0.18, resonance=0.3)),
    "acid": (music.acid_line,
             Voice("saw", cutoff_hz=180.0, env_octaves=2.6, env_seconds=0.35, resonance=0.8,
                   release=0.015)),
    # A sine is never filtered, so the sub's filter fields are neutral.
    "sub": (music.offbeat_sub,
            Voice("sine", cutoff_hz=0.0, env_octaves=0.0, env_seconds=1.0, resonance=0.0,
                  attack=0.004, release=0.04)),
}


def synth_bass_loop(
    *, sample_rate: int, bpm: float, key: str, bars: int, seed: int, style: str = "rolling",
) -> np.ndarray:
    """Bass loop in `key`: "rolling" (offbeat saw), "acid" (303 line) or "sub" (offbeat sine).

    Raises ValueError for an unknown `style`.
    """
    if style not in BASS_STYLES:
        raise ValueError(f"bass style must be one of {sorted(BASS_STYLES)} (got {style!r})")
    pattern, voice = BASS_STYLES[style]
    notes = pattern(key, bars=bars, rng=rng_for(seed, f"bass_{style}"))
    frames = loop_frames(sample_rate=sample_rate, bpm=bpm, bars=bars)
    line = render_line(notes, voice, sample_rate=sample_rate,
                       step_frames=frames / (bars * music.STEPS_PER_BAR))
    x = fold_to_length(line, frames)
    if style == "acid":
        beat = 60.0 / bpm
        x = loop_effects(stereo(x), [
            pedalboard.Distortion(drive_db=10.0),
            pedalboard.LowpassFilter(cutoff_frequency_hz=3500.0),
            pedalboard.Delay(delay_seconds=0.5 * beat, feedback=0.3, mix=0.18),
        ], sample_rate=sample_rate)
    else:
        # Gentle tanh warmth (amount varies a little per seed): harmonics make the bass
        # audible on small speakers.
        x = saturate(x, drive=rng_for(seed, f"bass_{style}_drive").uniform(0.1, 0.2))
    return finish_loop(x, sample_rate=sample_rate, peak_db=-1.0)


def synth_arp_loop(*, sample_rate: int, bpm: float, key: str, bars: int, seed: int) -> np.ndarray:
    """Plucked sixteenth arpeggio over the kit's chord progression, eighth-note delay.

    Straight (not dotted) echoes land on the grid, so the tempo stays easy to detect.
    """
    notes = music.arpeggio(key, bars=bars, seed=seed, rng=rng_for(seed, "arp"))
    voice = Voice("saw", cutoff_hz=700.0, env_octaves=3.0, env_seconds=0.25, resonance=0.35,
                  attack=0.002, release=0.08, decay=0.35)
    frames = loop_frames(sample_rate=sample_rate, bpm=bpm, bars=bars)
    line = render_line(notes, voice, sample_rate=sample_rate,
                       step_frames=frames / (bars * music.STEPS_PER_BAR))
    beat = 60.0 / bpm
    x = loop_effects(stereo(fold_to_length(line, frames)), [
        pedalboard.Delay(delay_seconds=0.5 * beat, feedback=0.35, mix=0.25),
        pedalboard.Reverb(room_size=0.6, damping=0.5, wet_level=0.2, dry_level=0.8, width=1.0),
    ], sample_rate=sample_rate)
    return finish_loop(x, sample_rate=sample_rate, peak_db=-2.0)


def synth_pad_loop(
    *, sample_rate: int, bpm: float, key: str, bars: int, seed: int,
    cutoff_hz: float = 1600.0, detune_cents: float = 12.0,
) -> np.ndarray:
    """Pad: detuned saw chords (one per bar) over a tonic+fifth pedal, slow swell, chorus, hall.

    The pedal keeps the tonic and fifth present under every chord so the key reads clearly.
    """
    rng = rng_for(seed, "pad")
    frames = loop_frames(sample_rate=sample_rate, bpm=bpm, bars=bars)
    bar_frames = frames / bars
    attack, release = round(0.35 * bar_frames), round(0.5 * bar_frames)
    pedal = (music.scale_note(key, 0, floor=music.PAD_FLOOR - 12),
             music.scale_note(key, 4, floor=music.PAD_FLOOR - 12))
    mix = np.zeros((2, frames + release + round(bar_frames)))
    for bar, degree in enumerate(music.chord_degrees(bars=bars, seed=seed)):
        start = round(bar * bar_frames)
        hold = round((bar + 1) * bar_frames) - start
        chord = pedal + music.triad(key, degree, floor=music.PAD_FLOOR)
        voices = _detuned_chord(chord, frames=hold + release, sample_rate=sample_rate,
                                detune_cents=detune_cents, rng=rng)
        mix[:, start:start + hold + release] += voices * _swell(hold, attack, release)
    x = loop_effects(fold_to_length(mix, frames), [
        pedalboard.LadderFilter(mode=pedalboard.LadderFilter.Mode.LPF24, cutoff_hz=cutoff_hz,
                                resonance=0.15),
        # A chorus LFO with whole cycles per loop keeps the seam clean.
        pedalboard.Chorus(rate_hz=periodic_hz(0.3, seconds=frames / sample_rate), depth=0.3,
                          centre_delay_ms=8.0, mix=0.4),
        pedalboard.Reverb(room_size=0.8, damping=0.6, wet_level=0.35, dry_level=0.7, width=1.0),
    ], sample_rate=sample_rate)
    return finish_loop(x, sample_rate=sample_rate, peak_db=-3.0)


def synth_drone_loop(
    *, sample_rate: int, bpm: float, key: str, bars: int, seed: int,
) -> np.ndarray:
    """Atmo drone: tonic, fifth and third held, a slowly breathing filter, wind noise, hall.

    Oscillator and LFO frequencies are snapped to whole cycles per loop, so the held
    tones are periodic in the loop length and the seam is inaudible.
    """
    rng = rng_for(seed, "atmo")
    frames = loop_frames(sample_rate=sample_rate, bpm=bpm, bars=bars)
    seconds = frames / sample_rate
    # (scale degree, level, register floor): tonic and fifth low, octave and third above.
    low, high = music.DRONE_FLOOR, music.DRONE_FLOOR + 12
    tones = ((0, 1.0, low), (4, 0.7, low), (0, 0.5, high), (2, 0.3, high))
    dry = np.zeros(frames)
    for degree, level, floor in tones:
        base = midi_to_hz(music.scale_note(key, degree, floor=floor))
        for cents in (-8.0, 8.0):
            hz = periodic_hz(base * 2 ** (cents / 1200), seconds=seconds)
            dry += level * saw_wave(np.full(frames, hz), sample_rate=sample_rate,
                                    phase0=rng.random())
    # One filter breath per ~8 s (at least one per loop) keeps the LFO periodic too.
    breaths = max(1, round(seconds / 8.0))
    lfo = 0.5 - 0.5 * np.cos(2 * np.pi * breaths * np.arange(frames) / frames)
    dry += 0.5 * rng.standard_normal(frames) * (0.3 + 0.7 * lfo)
    cutoff = 250.0 * 2.0 ** (2.5 * lfo)
    filtered = process_circular(
        lambda pair: sweep_lowpass(pair[0], pair[1], sample_rate=sample_rate, resonance=0.3,
                                   block=256),
        np.stack([dry, cutoff]))
    x = loop_effects(stereo(filtered), [
        pedalboard.Chorus(rate_hz=periodic_hz(0.2, seconds=seconds), depth=0.4, mix=0.5),
        pedalboard.Reverb(room_size=0.95, damping=0.4, wet_level=0.5, dry_level=0.5, width=1.0),
    ], sample_rate=sample_rate)
    return finish_loop(x, sample_rate=sample_rate, peak_db=-4.0)


def render_line(
    notes: list[music.Note], voice: Voice, *, sample_rate: int, step_frames: float,
) -> np.ndarray:
    """Mono line from `notes`; longer than the notes by the release tail (caller folds it)."""
    starts = [round(n.step * step_frames) for n in notes]
    gates = [max(1, round(n.length * step_frames)) for n in notes]
    release = round(voice.release * sample_rate)
    total = max(s + g for s, g in zip(starts, gates)) + release
    pitch = _pitch_track(notes, starts, total, glide=round(voice.glide * sample_rate))
    osc = WAVES[voice.wave](midi_to_hz(pitch), sample_rate=sample_rate)
    amp = np.zeros(total)
    sweep = np.zeros(total)
    # Filter envelopes all last env_seconds, so each trigger overwrites its predecessor's rest.
    sweep_frames = round(voice.env_seconds * sample_rate)
    for note, start, gate in zip(notes, starts, gates):
        shape = _note_envelope(note, gate, release, voice, sample_rate=sample_rate)
        amp[start:start + shape.size] = np.maximum(amp[start:start + shape.size], shape)
        if not note.slide:  # slides keep the running filter envelope (303 behaviour)
            span = min(sweep_frames, total - start)
            sweep[start:start + span] = _filter_envelope(note, span, voice,
                                                         sample_rate=sample_rate)
    if voice.wave != "sine":
        osc = sweep_lowpass(osc, voice.cutoff_hz * 2.0 ** sweep, sample_rate=sample_rate,
                            resonance=voice.resonance)
    return osc * amp


def loop_effects(x: np.ndarray, effects: list, *, sample_rate: int) -> np.ndarray:
    """Run a pedalboard chain circularly so delay and reverb tails wrap into the loop start."""
    return process_circular(lambda tiled: apply_effects(tiled, effects, sample_rate=sample_rate),
                            x, tail_frames=round(EFFECT_TAIL_SECONDS * sample_rate))


def _pitch_track(
    notes: list[music.Note], starts: list[int], total: int, *, glide: int,
) -> np.ndarray:
    """Per-sample MIDI pitch: each note holds until the next; slides glide over `glide`."""
    pitch = np.full(total, float(notes[0].midi))
    stops = [*starts[1:], total]
    for index, (note, start, stop) in enumerate(zip(notes, starts, stops)):
        pitch[start:stop] = note.midi
        if note.slide and index > 0:
            span = min(glide, stop - start)
            pitch[start:start + span] = np.linspace(notes[index - 1].midi, note.midi, span)
    return pitch


def _note_envelope(
    note: music.Note, gate: int, release: int, voice: Voice, *, sample_rate: int,
) -> np.ndarray:
    """Attack (skipped on slides), sustain or pluck decay over the gate, exponential release."""
    level = note.velocity * (1.3 if note.accent else 1.0)
    body = np.full(gate, level)
    if voice.decay is not None:
        body *= np.exp(-LN_1000 * np.arange(gate) / (voice.decay * sample_rate))
    if not note.slide:
        rise = min(gate, max(1, round(voice.attack * sample_rate)))
        body[:rise] *= np.linspace(0.0, 1.0, rise)
    tail = body[-1] * np.exp(-LN_1000 * np.arange(1, release + 1) / max(release, 1))
    return np.concatenate([body, tail])


def _filter_envelope(
    note: music.Note, frames: int, voice: Voice, *, sample_rate: int,
) -> np.ndarray:
    """Filter opening in octaves, decaying from the note's start; accents open further."""
    depth = voice.env_octaves + (voice.accent_octaves if note.accent else 0.0)
    return depth * np.exp(-LN_1000 * np.arange(frames) / (voice.env_seconds * sample_rate))


def _detuned_chord(
    chord: tuple[int, ...], *, frames: int, sample_rate: int, detune_cents: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Stereo chord: per note two saws ±`detune_cents`, flat one leaning left, sharp right."""
    left, right = np.zeros(frames), np.zeros(frames)
    for midi in chord:
        flat, sharp = (midi_to_hz(midi) * 2 ** (sign * detune_cents / 1200) for sign in (-1, 1))
        low = saw_wave(np.full(frames, flat), sample_rate=sample_rate, phase0=rng.random())
        high = saw_wave(np.full(frames, sharp), sample_rate=sample_rate, phase0=rng.random())
        left += 0.7 * low + 0.3 * high
        right += 0.3 * low + 0.7 * high
    return np.stack([left, right]) / len(chord)


def _swell(hold: int, attack: int, release: int) -> np.ndarray:
    """Slow pad envelope: raised-cosine attack, sustain for `hold`, exponential release."""
    envelope = np.ones(hold + release)
    envelope[:attack] = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, attack))
    envelope[hold:] = np.exp(-LN_1000 * np.arange(release) / release)
    return envelope
