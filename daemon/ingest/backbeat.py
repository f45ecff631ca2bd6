"""The backbeat: a groove's snare or clap on beats 2 and 4 settles the octave of its tempo.

A drum loop's onsets pulse at its eighths about as strongly as at its beats, so its pulse
alone reads a hip-hop beat at 85 BPM as 170, and the kicks of a drum-and-bass break (on 1
and the "and" of 3) pulse at half its tempo. The snare does not mislead: in a groove with a
kick it lands on beats 2 and 4. Read at the true tempo the snares fall on the odd beats
(counting from 0); read at double they fall on even beats (a half-time feel), read at half
between the beats. A loop starts on its downbeat, so the beat grid is known once the tempo
is.

Snares are told apart by each onset's sound just after it, relative to the loop's own
sounds, never by fixed levels a kit's tuning would break. Hats are the onsets far quieter
below 2.5 kHz than the rest (of the two best-separated groups by that level, the lower).
Of the rest, the snares are the group whose mid band (200-2500 Hz) stands clearly higher over
the low band (30-150 Hz), and the others' low band must lead their mid band (kicks). A loop
with no kick (a top loop), no distinct snare, or snares off beats 2 and 4 says nothing.

A backbeat tempo below `HALF_TIME_BELOW` is a half-time groove (dubstep, trap at 140 BPM),
whose tempo is double: the two readings are the same audio, and producers name such kits at
the faster tempo. Pure functions on a power spectrogram.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from daemon.ingest.features import Spectrum, onset_strength

_LOW, _MID = (30.0, 150.0), (200.0, 2500.0)  # Hz
_AFTER_S = 0.02  # an onset's sound: the loudest frame within 20 ms after it
_MIN_GAP_S = 0.05  # onsets closer than this are one hit (a flam)
#: Two groups of onsets are different drums only when their means differ by this many dB:
#: hats from the bodied hits, snares from kicks (set on bench/real_kits.py, development seeds
#: 100-102: a General MIDI snare with a kick's low end stood 2.8 dB over its kicks).
_HAT_GAP_DB, _SNARE_GAP_DB = 6.0, 2.5
_ON_BEAT = 0.12  # an onset within this share of a beat of a beat is on it
#: The share of the snares' onset strength on beats 2 and 4 that makes a backbeat.
_BACKBEAT_SHARE = 0.6
_MIN_SNARES = 2
#: Backbeat tempi below this are half-time grooves at double the tempo (the range that
#: rules/genres gives dubstep, 130-150 BPM, halves to 65-75).
HALF_TIME_BELOW = 75.0


def backbeat_tempo(*, spectrum: Spectrum, tempi: Sequence[float]) -> float | None:
    """The first of `tempi` (exact: the beat grid must hold to the loop's last bar) at which
    the loop's snares fall on beats 2 and 4, doubled below `HALF_TIME_BELOW`; None when the
    loop shows no backbeat at any of them (see the module docstring). `spectrum` is the
    loop's power spectrogram."""
    snares = _snare_onsets(spectrum)
    if snares is None:
        return None
    times, strength = snares
    for tempo in tempi:
        if tempo > 0 and _backbeat_share(times, strength, tempo) >= _BACKBEAT_SHARE:
            return tempo * 2 if tempo < HALF_TIME_BELOW else tempo
    return None


def _snare_onsets(spectrum: Spectrum) -> tuple[np.ndarray, np.ndarray] | None:
    """(seconds, onset strength) of the onsets that sound like a snare or clap, or None when
    the loop has no kick or no distinct snare."""
    envelope = onset_strength(spectrum=spectrum)
    frames = _onsets(envelope, spectrum.frame_rate)
    if frames.size < 4:
        return None
    after = max(1, round(_AFTER_S * spectrum.frame_rate))
    low, mid = _band_db(spectrum, _LOW), _band_db(spectrum, _MID)

    def level(band: np.ndarray) -> np.ndarray:
        return np.array([band[frame:frame + after + 1].max() for frame in frames])

    low_level, mid_level = level(low), level(mid)
    over_low = mid_level - low_level
    bodied = _upper(np.maximum(low_level, mid_level), _HAT_GAP_DB)
    bodied = np.ones(frames.size, dtype=bool) if bodied is None else bodied
    if np.count_nonzero(bodied) < 2:
        return None
    snare = _upper(over_low[bodied], _SNARE_GAP_DB)
    if snare is None or np.count_nonzero(snare) < _MIN_SNARES:
        return None
    if np.median(over_low[bodied][~snare]) > 0:  # the "kicks" have no low end: no kick
        return None
    chosen = np.flatnonzero(bodied)[snare]
    return frames[chosen] / spectrum.frame_rate, envelope[frames[chosen]]


def _onsets(envelope: np.ndarray, frame_rate: float) -> np.ndarray:
    """Frames of the envelope's peaks above its mean plus one deviation, a flam apart."""
    if envelope.size < 3:
        return np.zeros(0, dtype=int)
    threshold = envelope.mean() + envelope.std()
    peaks = np.flatnonzero((envelope[1:-1] > envelope[:-2]) & (envelope[1:-1] >= envelope[2:])
                           & (envelope[1:-1] > threshold)) + 1
    gap = max(1, round(_MIN_GAP_S * frame_rate))
    kept: list[int] = []
    for frame in peaks:
        if kept and frame - kept[-1] < gap:
            if envelope[frame] > envelope[kept[-1]]:
                kept[-1] = frame
            continue
        kept.append(int(frame))
    return np.array(kept, dtype=int)


def _band_db(spectrum: Spectrum, band: tuple[float, float]) -> np.ndarray:
    """Power in `band` per frame, in dB."""
    freqs = spectrum.freqs
    inside = (freqs >= band[0]) & (freqs < band[1])
    return 10.0 * np.log10(spectrum.power[inside].sum(axis=0) + 1e-10)


def _upper(values: np.ndarray, min_gap: float) -> np.ndarray | None:
    """Which `values` fall in the upper of their two best-separated groups (the split with
    the largest between-group variance), or None when the groups' means differ by less than
    `min_gap`."""
    if values.size < 2:
        return None
    ordered = np.sort(values)
    best, split = -1.0, 1
    for index in range(1, ordered.size):
        lower, upper = ordered[:index], ordered[index:]
        spread = lower.size * upper.size * (upper.mean() - lower.mean()) ** 2
        if spread > best:
            best, split = spread, index
    if ordered[split:].mean() - ordered[:split].mean() < min_gap:
        return None
    return values >= ordered[split]


def _backbeat_share(times: np.ndarray, strength: np.ndarray, tempo: float) -> float:
    """The share of the snares' strength on odd beats (2 and 4) at `tempo`."""
    beats = times * tempo / 60.0
    nearest = np.round(beats)
    on_odd = (np.abs(beats - nearest) < _ON_BEAT) & (nearest.astype(int) % 2 == 1)
    total = float(strength.sum())
    return float(strength[on_odd].sum()) / total if total > 0 else 0.0
