"""The backbeat settles a drum loop's octave: grooves sequenced from recorded one-shots.

Sonic Pi's kick, snare and closed hat (Debian's sonic-pi-samples) play the grooves whose
octave the pulse alone gets wrong: a hip-hop beat with sixteenth hats (read at double), a
drum-and-bass break (its kicks pulse at half), and a half-time groove at 140 BPM.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from conftest import require_system_path

from daemon.ingest.backbeat import HALF_TIME_BELOW, backbeat_tempo
from daemon.ingest.tempo import measure_pulse, tempo_spectrum

RATE = 44100
BARS = 4


@pytest.fixture(scope="module")
def hits() -> dict[str, np.ndarray]:
    folder = require_system_path("/usr/share/sonic-pi/samples", "sonic-pi-samples")
    sounds = {}
    # "soft": a snare lost in the kick it lands on.
    for name, file, gain in (("kick", "drum_heavy_kick", 1.0), ("snare", "drum_snare_hard", 1.0),
                             ("hat", "drum_cymbal_closed", 1.0), ("open", "drum_cymbal_open", 1.0),
                             ("soft", "sn_generic", 0.3)):
        audio, rate = sf.read(folder / f"{file}.flac", dtype="float32", always_2d=True)
        assert rate == RATE
        sounds[name] = gain * audio.mean(axis=1)
    return sounds


def groove(hits: dict[str, np.ndarray], bpm: float, steps: dict[str, tuple[int, ...]],
           ) -> np.ndarray:
    """`BARS` bars at `bpm`: each sound at its sixteenth steps of every bar, the tails past
    the loop's end folded onto its start (a seamless loop export)."""
    step = 60.0 / bpm / 4
    length = round(BARS * 16 * step * RATE)
    out = np.zeros(length + RATE * 2, dtype=np.float32)
    for name, positions in steps.items():
        for bar in range(BARS):
            for position in positions:
                start = round((bar * 16 + position) * step * RATE)
                out[start:start + hits[name].size] += 0.5 * hits[name]
    loop = out[:length].copy()
    loop[:out.size - length] += out[length:]
    return loop


HIP_HOP = {"kick": (0, 7, 10), "snare": (4, 12), "hat": tuple(range(16))}
BREAK = {"kick": (0, 10), "snare": (4, 12), "hat": tuple(range(0, 16, 2))}
HALF_TIME = {"kick": (0,), "snare": (8,), "hat": tuple(range(0, 16, 2))}


@pytest.mark.parametrize(("bpm", "pattern"), [(85.0, HIP_HOP), (92.0, HIP_HOP),
                                              (172.0, BREAK), (165.0, BREAK),
                                              (140.0, HALF_TIME)],
                         ids=["hip-hop-85", "hip-hop-92", "break-172", "break-165",
                              "half-time-140"])
def test_a_drum_loop_backbeat_settles_its_octave(hits, bpm, pattern):
    pulse = measure_pulse(y=groove(hits, bpm, pattern), sample_rate=RATE, drums=True)
    assert pulse.kicks
    assert pulse.bpm == pytest.approx(bpm, rel=0.01)


def test_the_backbeat_says_nothing_without_drums_or_kicks(hits):
    tonal = measure_pulse(y=groove(hits, 172.0, BREAK), sample_rate=RATE, drums=False)
    assert not tonal.kicks  # only a drum loop's backbeat or kicks settle an octave
    top = {"hat": tuple(range(0, 16, 2)), "open": (2, 6, 10, 14)}
    spectrum = tempo_spectrum(groove(hits, 124.0, top), RATE)
    assert backbeat_tempo(spectrum=spectrum, tempi=(62.0, 124.0, 248.0)) is None


def test_only_the_true_tempo_puts_the_snares_on_2_and_4(hits):
    """Read at half its tempo a break has its snares on the offbeat eighths, read at double
    on beat 3 (half time): only 172 is a backbeat."""
    spectrum = tempo_spectrum(groove(hits, 172.0, BREAK), RATE)
    assert backbeat_tempo(spectrum=spectrum, tempi=(86.0,)) is None
    assert backbeat_tempo(spectrum=spectrum, tempi=(344.0,)) is None
    assert backbeat_tempo(spectrum=spectrum, tempi=(86.0, 172.0, 344.0)) == 172.0


def test_a_backbeat_too_slow_to_be_named_is_half_time_at_double(hits):
    # A snare on beat 3 at 140 BPM is on 2 and 4 at 70, below HALF_TIME_BELOW: named 140.
    spectrum = tempo_spectrum(groove(hits, 140.0, HALF_TIME), RATE)
    assert HALF_TIME_BELOW > 70.0
    assert backbeat_tempo(spectrum=spectrum, tempi=(70.0,)) == 140.0


FOUR_ON_THE_FLOOR_SNARE_ON_KICKS = {"kick": (0, 4, 8, 12), "soft": (4, 12),
                                    "hat": (2, 6, 10, 14)}


@pytest.mark.parametrize("bpm", [96.0, 92.0])
def test_the_kick_band_settles_a_groove_whose_snare_is_lost_in_its_kicks(hits, bpm):
    """The pulse reads the offbeat hats' eighths (double) and no snare stands out of the
    kicks it lands on, so the kick band decides. It must pulse at the kicks' beats, not at
    the hats' eighths: log-compressed, the hats' faint low skirt rose nearly as much as a
    kick, and 96 read 192."""
    pattern = FOUR_ON_THE_FLOOR_SNARE_ON_KICKS
    spectrum = tempo_spectrum(groove(hits, bpm, pattern), RATE)
    assert backbeat_tempo(spectrum=spectrum, tempi=(bpm, 2 * bpm)) is None  # the trap
    pulse = measure_pulse(y=groove(hits, bpm, pattern), sample_rate=RATE, drums=True)
    assert pulse.kicks
    assert pulse.bpm == pytest.approx(bpm, rel=0.01)


def test_a_top_loop_has_no_kick_to_settle_an_octave(hits):
    top = {"hat": tuple(range(0, 16, 2)), "open": (2, 6, 10, 14)}
    assert not measure_pulse(y=groove(hits, 124.0, top), sample_rate=RATE, drums=True).kicks
