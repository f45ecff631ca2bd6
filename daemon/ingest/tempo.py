"""Tempo: precise audio estimation, filename tokens, and the loop-length rule.

`estimate_tempo` reads the spectral-flux onset envelope at a 5.8 ms hop and scores each
tempo by how coherently the onsets line up with a pulse train at that tempo and its first
harmonics: the magnitude of the envelope's Fourier transform, summed over harmonics. The
transform is zero-padded until neighbouring bins are a twentieth of a peak's width apart
and the best bin is refined by parabolic interpolation, so clean material lands within
0.01-0.1 % of the true tempo (the renderer re-estimates its mixes with it).
`measure_pulse` adds the drums' word on the octave for drum loops (their backbeat, else the
kick band). Weighing these readings
against each other, for one loop or a whole kit, is `daemon.ingest.kit_tempo`'s work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from daemon.ingest.backbeat import backbeat_tempo
from daemon.ingest.features import ANALYSIS_RATE, Spectrum, compute_spectrum, onset_strength
from daemon.ingest.features import to_analysis_rate as _to_analysis_rate

_TEMPO_FFT, _TEMPO_HOP = 1024, 128  # 46 ms window, 5.8 ms hop at 22.05 kHz
_HARMONIC_WEIGHTS = np.array([1.0, 0.5, 1 / 3, 0.25])  # pulse, 8ths, triplets, 16ths
_PRIOR_CENTRE, _PRIOR_OCTAVES = 120.0, 1.0  # log-normal tempo prior (as librosa's default)
BEATS_PER_BAR = 4
LOOP_BARS = (1, 2, 4, 8, 16)
#: Loop tempi outside this range are implausible for sample-pack loops.
LOOP_MIN_BPM, LOOP_MAX_BPM = 70.0, 200.0
#: The kick band: below it sits the kick's body, which marks the beat in a drum loop.
_KICK_BAND_HZ = 150.0
#: A kick-band pulse this coherent is a beat, not a ripple.
_KICK_PULSE = 0.1
#: A loop whose kick band holds less of its onsets (magnitude flux) than this has no kick,
#: and a coherent ripple there is its hats' skirt: recorded top loops hold 0.2-0.6 %, grooves
#: 11-19 % (bench/real_kits.py, development seed 101).
_KICK_SHARE = 0.03
#: A kick-band line at half the reading at least this strong (relative to the reading's
#: own line) means the kicks fall on every other pulse: the pulse is the eighth notes of a
#: beat half as fast. Synthesised loops read at double tempo score 1.05-1.08, loops read
#: right 0.01-0.05 (tuning kits, seeds 500-539; with the log-compressed flux used before,
#: 0.6-1.2 and 0-0.35).
_HALF_LINE = 0.5
_BAR_FIT = 0.03  # a reading within 3 % of a loop's whole-bar tempo is that tempo

_EXPLICIT = re.compile(r"(?<![\d.])(\d{2,3}(?:[.,]\d{1,2})?)\s*[-_ ]?\s*bpm(?![a-z])"
                       r"|bpm\s*[-_ ]?\s*(\d{2,3}(?:[.,]\d{1,2})?)(?![\d])", re.IGNORECASE)
_BARE = re.compile(r"(?:^|(?<=[\s_\-.(\[]))(\d{2,3})(?=$|[\s_\-.)\]])")


@dataclass(frozen=True)
class TempoChoice:
    """A stem's tempo: `bpm` (None for one-shots), `confidence` 0..1, its `source` and, when
    the evidence is weak or contradicts itself, the `reason` in words."""

    bpm: float | None
    confidence: float
    source: str  # "filename" | "length" | "audio" | "kit" | "user" | "none"
    reason: str = ""


def estimate_tempo(*, y: np.ndarray, sample_rate: int, min_bpm: float = 60.0,
                   max_bpm: float = 200.0) -> tuple[float, float]:
    """Estimate the tempo of mono `y`.

    Returns
    -------
    (bpm, confidence)
        `confidence` is the onsets' phase coherence at the chosen tempo (1 for a perfect
        click track, about 0.1 for noise). Silence returns ``(min_bpm, 0.0)``.
    """
    if not 0 < min_bpm < max_bpm:
        raise ValueError(f"need 0 < min_bpm < max_bpm (got {min_bpm}, {max_bpm})")
    spectrum = tempo_spectrum(y, sample_rate)
    envelope = onset_strength(spectrum=spectrum)
    return tempo_from_envelope(envelope=envelope, frame_rate=spectrum.frame_rate,
                               min_bpm=min_bpm, max_bpm=max_bpm)


@dataclass(frozen=True)
class Pulse:
    """A loop's audio pulse: `bpm`, its `confidence` (see `estimate_tempo`) and whether the
    drums settled its octave (`kicks`: the kick band, or a drum loop's backbeat)."""

    bpm: float
    confidence: float
    kicks: bool


def measure_pulse(*, y: np.ndarray, sample_rate: int, min_bpm: float = LOOP_MIN_BPM,
                  max_bpm: float = LOOP_MAX_BPM, drums: bool = False) -> Pulse:
    """The pulse of a loop: `estimate_tempo`, then its octave settled by the drums.

    Offbeat hats and eighth-note bass lines make the onsets of a slow groove pulse twice
    per beat, and the pulse alone reads 85 BPM as 170. Only a drum loop (`drums`) settles
    the octave: by its backbeat, when its snare falls on beats 2 and 4 at the reading, its
    half or its double (`daemon.ingest.backbeat`), else by its kicks: when the kick band
    repeats at half the reading about as strongly as at the reading, the reading was the
    eighth notes. A bass line's own eighths fill that band too, so tonal loops leave the
    octave open (`Pulse.kicks` is False), as does a drum loop with neither cue; `bpm`
    stays within the bounds.
    """
    if not 0 < min_bpm < max_bpm:
        raise ValueError(f"need 0 < min_bpm < max_bpm (got {min_bpm}, {max_bpm})")
    spectrum = tempo_spectrum(y, sample_rate)
    bpm, confidence = tempo_from_envelope(envelope=onset_strength(spectrum=spectrum),
                                          frame_rate=spectrum.frame_rate, min_bpm=min_bpm,
                                          max_bpm=max_bpm)
    if not drums:
        return Pulse(bpm, confidence, False)
    if confidence > 0:
        duration = np.asarray(y).shape[-1] / sample_rate
        tempi = [_whole_bar(tempo, duration) for tempo in (bpm / 2, bpm, bpm * 2)
                 if min_bpm / 2 <= tempo <= max_bpm]
        settled = backbeat_tempo(spectrum=spectrum, tempi=tempi)
        if settled is not None and min_bpm <= settled <= max_bpm:
            return Pulse(settled, confidence, True)
    bins = int(_KICK_BAND_HZ * spectrum.n_fft / spectrum.sample_rate) + 1
    kicks = _magnitude_flux(spectrum.power[:bins])
    at_pulse = _line(kicks, spectrum.frame_rate, bpm)
    # The full band's flux only where it decides: a clear kick-band pulse, kick or skirt.
    clear = bool(confidence > 0 and at_pulse >= _KICK_PULSE and kicks.sum() >= (
        _KICK_SHARE * _magnitude_flux(spectrum.power).sum()))
    if clear and bpm / 2 >= min_bpm and _line(kicks, spectrum.frame_rate, bpm / 2) >= (
            _HALF_LINE * at_pulse):
        bpm /= 2
    return Pulse(bpm, confidence, clear)


def _magnitude_flux(power: np.ndarray) -> np.ndarray:
    """The summed rise of magnitude per frame of a power spectrogram (rows: bins).

    Not log-compressed as `onset_strength` is: compressed, the faint low-frequency skirt of
    each offbeat hat rises in the kick band nearly as much as a kick does, and the band
    pulses at the hats' eighths instead of the kicks' beats."""
    magnitude = np.sqrt(power)
    return np.maximum(np.diff(magnitude, axis=1, prepend=magnitude[:, :1]), 0.0).sum(axis=0)


def _whole_bar(tempo: float, duration: float) -> float:
    """`tempo` moved to the nearest tempo at which `duration` is whole bars, when within 3 %
    (the backbeat's grid must hold to a loop's last bar); else `tempo`."""
    bars = round(duration * tempo / (BEATS_PER_BAR * 60.0))
    exact = bars * BEATS_PER_BAR * 60.0 / duration if bars >= 1 else tempo
    return exact if abs(exact / tempo - 1.0) < _BAR_FIT else tempo


def tempo_spectrum(y: np.ndarray, sample_rate: int) -> Spectrum:
    """The power spectrogram tempo is read from: mono `y` at `ANALYSIS_RATE`, a 46 ms window
    every 5.8 ms."""
    y = _to_analysis_rate(y=np.asarray(y, dtype=np.float32).ravel(), sample_rate=sample_rate)
    return compute_spectrum(y=y, sample_rate=ANALYSIS_RATE, n_fft=_TEMPO_FFT, hop=_TEMPO_HOP)


def _line(envelope: np.ndarray, frame_rate: float, bpm: float) -> float:
    """Phase coherence of `envelope` at one tempo: 1 for clicks exactly on it, 0 for none."""
    total = float(envelope.sum())
    if total <= 0:
        return 0.0
    seconds = np.arange(envelope.size) / frame_rate
    wave = np.exp(-2j * np.pi * bpm / 60.0 * seconds)
    return float(abs(np.dot(envelope - envelope.mean(), wave)) / total)


def tempo_from_envelope(*, envelope: np.ndarray, frame_rate: float, min_bpm: float,
                        max_bpm: float) -> tuple[float, float]:
    """Harmonic pulse-coherence tempo of an onset `envelope` sampled at `frame_rate`."""
    total = float(envelope.sum())
    if envelope.size < 4 or total <= 0:
        return min_bpm, 0.0
    harmonics = len(_HARMONIC_WEIGHTS)
    size = 1 << int(np.ceil(np.log2(20 * envelope.size * harmonics)))
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean(), n=size))
    bpm_per_bin = 60.0 * frame_rate / size
    bins = np.arange(max(1, int(min_bpm / bpm_per_bin)), int(max_bpm / bpm_per_bin) + 2)
    bins = bins[bins * harmonics < spectrum.size]
    if bins.size < 3:
        return min_bpm, 0.0
    salience = sum(weight * spectrum[bins * (h + 1)] for h, weight in
                   enumerate(_HARMONIC_WEIGHTS))
    prior = np.exp(-0.5 * (np.log2(bins * bpm_per_bin / _PRIOR_CENTRE) / _PRIOR_OCTAVES) ** 2)
    best = int(np.clip(np.argmax(salience * prior), 1, bins.size - 2))
    left, mid, right = salience[best - 1: best + 2]
    curvature = left - 2 * mid + right
    offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
    bpm = float((bins[best] + np.clip(offset, -0.5, 0.5)) * bpm_per_bin)
    confidence = float(mid / (_HARMONIC_WEIGHTS.sum() * total))
    return float(np.clip(bpm, min_bpm, max_bpm)), float(np.clip(confidence, 0.0, 1.0))


def bpm_from_name(name: str) -> float | None:
    """Tempo written in a file or folder name, or None.

    Explicit tokens (``128bpm``, ``128 BPM``, ``128-bpm``, ``bpm_128``) are accepted from
    40 to 250; a bare delimited number (``_128_``) only from 60 to 200, since kit
    numbering and bit depths look alike. The file name wins over folder names.
    """
    explicit, bare = name_tempi(name)
    return explicit if explicit is not None else bare


def name_tempi(name: str) -> tuple[float | None, float | None]:
    """(explicit, bare) tempo tokens, searching the file name first, then folders inward-out."""
    parts = [part for part in re.split(r"[\\/]", name) if part]
    explicit = bare = None
    for part in reversed(parts):
        stem = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", part)
        for match in _EXPLICIT.finditer(stem):
            value = float((match.group(1) or match.group(2)).replace(",", "."))
            if explicit is None and 40.0 <= value <= 250.0:
                explicit = value
        for match in _BARE.finditer(stem):
            if bare is None and 60 <= int(match.group(1)) <= 200:
                bare = float(match.group(1))
    return explicit, bare


def length_candidates(*, duration: float) -> list[float]:
    """Tempi at which `duration` seconds is a whole number of 4/4 bars (1, 2, 4, 8, 16)."""
    tempi = [bars * BEATS_PER_BAR * 60.0 / duration for bars in LOOP_BARS] if duration else []
    return [bpm for bpm in tempi if LOOP_MIN_BPM <= bpm <= LOOP_MAX_BPM]
