"""Tempo traps: loops whose length fits two tempi and whose pulse reads the wrong one.

A percussion loop playing five even hits per four beats is, by its audio, at 5:4 of its
kit's tempo; its length (4 bars at 140 BPM) is also 5 bars at 175. Three hits per two beats
make a 3:2 trap (8 s: 4 bars at 120 or 6 at 180). Octave traps need no special loop: a
kit at 85 BPM whose hats run in eighths pulses at 170, and 4 bars at 85 are 8 at 170.
`trap_kit` adds such loops to a synthesised kit; their ground truth is the kit's tempo.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from daemon.synth.drums import DRUM_PEAK_DB, synth_metal_perc
from daemon.synth.dsp import finish_loop, fold_to_length, loop_frames
from daemon.synth.kit import KitSample, synthesize_kit

#: The traps `trap_kit` knows: hits per beat of the cross-rhythm.
TRAPS = {"5:4": Fraction(5, 4), "3:2": Fraction(3, 2)}


def cross_rhythm_loop(*, sample_rate: int, bpm: float, bars: int, hits_per_beat: Fraction,
                      seed: int) -> np.ndarray:
    """A metallic percussion loop of exactly `bars` bars at `bpm` with `hits_per_beat`
    evenly spaced hits per beat (a whole number of them per loop is required, so the loop
    repeats seamlessly); float32 stereo ``(2, n)``."""
    hits = hits_per_beat * 4 * bars
    if hits.denominator != 1:
        raise ValueError(f"{hits_per_beat} hits per beat are no whole number in {bars} bars")
    frames = loop_frames(sample_rate=sample_rate, bpm=bpm, bars=bars)
    hit = synth_metal_perc(sample_rate=sample_rate, seed=seed)
    mix = np.zeros((2, frames + hit.shape[-1]))
    count = int(hits)
    for index in range(count):
        start = round(index * frames / count)
        mix[:, start:start + hit.shape[-1]] += hit
    return finish_loop(fold_to_length(mix, frames), sample_rate=sample_rate,
                       peak_db=DRUM_PEAK_DB)


def trap_kit(*, bpm: float, key: str = "A minor", seed: int = 0, traps: tuple[str, ...] = (),
             names: str = "anonymous", sample_rate: int = 44100, bars: int = 4
             ) -> list[KitSample]:
    """`synthesize_kit` plus one cross-rhythm percussion loop per name in `traps`
    (``"5:4"``, ``"3:2"``), named ``sample_9N.wav`` (anonymous) or
    ``Percussion Loops/Perc_Loop_TRAP_BPMbpm.wav``."""
    samples = synthesize_kit(bpm=bpm, key=key, seed=seed, names=names,
                             sample_rate=sample_rate, bars=bars)
    for number, trap in enumerate(traps, start=1):
        audio = cross_rhythm_loop(sample_rate=sample_rate, bpm=bpm, bars=bars,
                                  hits_per_beat=TRAPS[trap], seed=seed + number)
        label = (f"sample_{90 + number}.wav" if names == "anonymous" else
                 f"Percussion Loops/Perc_Loop_{trap.replace(':', 'to')}_{bpm:g}bpm.wav")
        samples.append(KitSample(name=label, audio=audio.astype(np.float32),
                                 sample_rate=sample_rate, category="perc", kind="loop",
                                 bpm=float(bpm), key=None, tags=("metallic",)))
    return samples
