"""FX one-shots: noise risers and downlifters, a whole number of bars long at a tempo.

They carry no key (filtered noise) and no loop tempo: they are one-shots whose length
is musical so an arranger can end one exactly on a section boundary.
"""

from __future__ import annotations

import numpy as np
import pedalboard

from daemon.synth.dsp import (
    apply_effects,
    butter,
    finish_oneshot,
    loop_frames,
    rng_for,
    stereo,
    sweep_lowpass,
)

#: Sweep range of the riser's resonant filter (Hz): from a dull rumble to airy hiss.
SWEEP_FROM_HZ, SWEEP_TO_HZ = 250.0, 12000.0


def synth_riser(
    *, sample_rate: int, bpm: float, bars: int = 4, seed: int, rising: bool = True,
) -> np.ndarray:
    """Noise sweep `bars` bars long at `bpm`: a riser, or with ``rising=False`` a downlifter.

    White noise through a resonant low-pass whose cutoff climbs exponentially (with the
    last bars accelerating), swelling in level, widened by a short stereo reverb.
    """
    rng = rng_for(seed, "riser")
    frames = loop_frames(sample_rate=sample_rate, bpm=bpm, bars=bars)
    progress = np.linspace(0.0, 1.0, frames)
    # progress**1.5 spends longer low and rushes the top: the build-up "pull".
    cutoff = SWEEP_FROM_HZ * (SWEEP_TO_HZ / SWEEP_FROM_HZ) ** (progress**1.5)
    noise = rng.standard_normal(frames)
    swept = sweep_lowpass(noise, cutoff, sample_rate=sample_rate,
                          resonance=rng.uniform(0.55, 0.65), block=256)
    x = swept * (0.05 + 0.95 * progress**2)
    room = pedalboard.Reverb(room_size=0.7, damping=0.3, wet_level=0.3, dry_level=0.8, width=1.0)
    wet = apply_effects(stereo(x), [room], sample_rate=sample_rate)
    # A downlifter is the riser played backwards: it starts bright and loud, then falls.
    return finish_oneshot(wet if rising else wet[:, ::-1].copy(), sample_rate=sample_rate,
                          peak_db=-2.0)


def synth_crackle(*, sample_rate: int, seconds: float = 4.0, seed: int) -> np.ndarray:
    """Vinyl crackle over surface hiss: a noise bed, ``(2, n)`` float32, `seconds` long.

    Sparse random clicks (about 40 a second, a few samples each, random level) over
    band-limited hiss at -30 dB, with no pulse and no pitch. It is what a lo-fi kit calls
    an atmosphere, and what a renderer must never mistake for a hi-hat.
    """
    rng = rng_for(seed, "crackle")
    frames = int(round(seconds * sample_rate))
    # Band-passed hiss, 500 Hz–8 kHz: the surface noise of a worn record, at -30 dB.
    hiss = butter(rng.standard_normal(frames), sample_rate=sample_rate,
                  cutoff=(500.0, min(8000.0, 0.45 * sample_rate)), kind="bandpass")
    hiss *= 10 ** (-30 / 20)
    clicks = np.zeros(frames)
    count = int(40 * seconds)
    positions = rng.integers(0, max(1, frames - 8), count)
    # A click is a few samples of decaying noise: broadband, far shorter than any drum hit.
    for position, level in zip(positions, rng.uniform(0.05, 0.6, count)):
        clicks[position:position + 6] += level * rng.standard_normal(6) * np.geomspace(1, 0.1, 6)
    return finish_oneshot(stereo(hiss + clicks), sample_rate=sample_rate, peak_db=-6.0)

