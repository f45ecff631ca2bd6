"""`analyse_stem`: one decoded stem → levels, kind, tempo, key, category, tags, vector.

Pure: arrays in, an `Analysis` out, no I/O. Levels are measured at the file's own rate
(peaks and clipping do not survive resampling); everything else reads the shared
`features.prepare` result at 22.05 kHz so it does not depend on the file's rate.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyloudnorm

from daemon.errors import AnalysisError
from daemon.ingest.classify import (
    CategoryClassifier,
    CategoryGuess,
    category_from_name,
    choose_kind,
    kind_from_name,
)
from daemon.ingest.features import (
    ANALYSIS_RATE,
    Prepared,
    fold_to_stereo,
    key_chroma,
    prepare,
)
from daemon.ingest.key import estimate_key, key_from_name
from daemon.ingest.rules import AnalysisRules, CategoryRule
from daemon.ingest.tags import derive_tags
from daemon.ingest.tempo import (
    LOOP_MAX_BPM,
    LOOP_MIN_BPM,
    TempoChoice,
    choose_loop_tempo,
    estimate_tempo,
    length_candidates,
)

#: A peak below this is silence (16-bit dither sits near -90 dBFS, room noise near -60).
SILENCE_DB = -70.0
_GATE_BLOCK_S = 0.4  # BS.1770 gating block: shorter clips have no integrated loudness
_CLIP_LEVEL = 0.999  # samples this close to the peak count as flattened tops
#: Onset coherence that counts as a pulse: lmms one-shots and noise read below 0.08,
#: real loops 0.1-0.2, clean synthesised loops 0.3 and more.
_PULSE_CONFIDENCE = 0.09
_PULSE_ONSETS = 4  # a pulse needs several hits, not one hit and its echo
_SUSTAIN_DB = -20.0  # a loop is still this loud in its final tenth; one-shots have decayed
_MIN_KEY_CONFIDENCE = 0.05  # below this the chroma is too flat to name a key
_NAME_KEY_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Analysis:
    """Everything the library stores about one stem (see `analyse_stem`)."""

    duration: float
    sample_rate: int
    channels: int
    peak_db: float
    lufs: float | None
    rms_db: float
    crest_db: float
    kind: str  # "loop" | "oneshot"
    bpm: float | None
    bpm_confidence: float
    bpm_source: str  # "filename" | "length" | "audio" | "none"
    key: str | None
    key_confidence: float
    key_source: str  # "filename" | "audio" | "none"
    category: str
    category_confidence: float
    category_source: str  # "filename" | "audio"
    tags: tuple[str, ...]
    descriptors: dict[str, float]
    features: np.ndarray


def analyse_stem(decoded_audio: np.ndarray, sample_rate: int, *, name: str,
                 rules: AnalysisRules, classifier: CategoryClassifier | None = None
                 ) -> Analysis:
    """Analyse one stem.

    Parameters
    ----------
    decoded_audio : float array ``(channels, frames)`` (or ``(frames,)`` for mono).
    name : the stem's path inside its kit; folder names are hints too.
    classifier : used when no category token is in the name.

    Raises
    ------
    AnalysisError
        ``empty``, ``nan-or-inf``, ``silent``, or ``uncategorised`` (no name token and
        no classifier).
    """
    audio = _checked(decoded_audio, sample_rate)
    levels = measure_levels(audio=audio, sample_rate=sample_rate)
    prepared = prepare(audio=audio, sample_rate=sample_rate)
    descriptors = {**prepared.descriptors, **{k: v for k, v in levels.items() if k != "lufs"}}
    guess = category_from_name(name, rules) or _classify(classifier, prepared.vector, name)
    rule = rules.categories[guess.category]
    duration = audio.shape[1] / sample_rate
    kind, tempo = _kind_and_tempo(prepared, name=name, rule=rule, rules=rules,
                                  duration=duration)
    key, key_confidence, key_source = _key(prepared, name=name, rule=rule)
    return Analysis(
        duration=duration, sample_rate=int(sample_rate), channels=audio.shape[0],
        peak_db=levels["peak_db"], lufs=levels["lufs"], rms_db=levels["rms_db"],
        crest_db=levels["crest_db"], kind=kind, bpm=tempo.bpm,
        bpm_confidence=tempo.confidence, bpm_source=tempo.source, key=key,
        key_confidence=key_confidence, key_source=key_source, category=guess.category,
        category_confidence=guess.confidence, category_source=guess.source,
        tags=derive_tags(name=name, descriptors=descriptors, category=guess.category,
                         rules=rules),
        descriptors=descriptors, features=prepared.vector)


def _checked(decoded_audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = np.asarray(decoded_audio, dtype=np.float32)
    audio = audio[None, :] if audio.ndim == 1 else audio
    if audio.ndim != 2 or audio.size == 0 or sample_rate <= 0:
        raise AnalysisError(f"empty: no audio (shape {np.shape(decoded_audio)})")
    if not np.all(np.isfinite(audio)):
        raise AnalysisError(f"nan-or-inf: {np.count_nonzero(~np.isfinite(audio))} samples")
    peak = float(np.max(np.abs(audio)))
    if peak <= 10 ** (SILENCE_DB / 20):
        raise AnalysisError(f"silent: peak {_db(peak):.1f} dBFS is below {SILENCE_DB:g}")
    return audio


def measure_levels(*, audio: np.ndarray, sample_rate: int) -> dict[str, float | None]:
    """Sample peak, RMS and crest (dB), share of samples at the peak, BS.1770 LUFS.

    ``lufs`` is None for clips shorter than one 400 ms gating block (no padding: padding
    would invent silence the gate then discards anyway) and for fully gated audio.
    """
    peak = float(np.max(np.abs(audio)))
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    clipped = float(np.mean(np.abs(audio) >= _CLIP_LEVEL * peak))
    return {"peak_db": _db(peak), "rms_db": _db(rms), "crest_db": _db(peak) - _db(rms),
            "clip_ratio": clipped, "lufs": _lufs(audio, sample_rate)}


def _lufs(audio: np.ndarray, sample_rate: int) -> float | None:
    if audio.shape[1] < _GATE_BLOCK_S * sample_rate:
        return None
    folded = fold_to_stereo(audio)  # BS.1770 surround weights need a known layout
    with warnings.catch_warnings():  # pyloudnorm warns on peaks at 0 dBFS; not our concern
        warnings.simplefilter("ignore")
        loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(folded.T.astype(np.float64))
    return float(loudness) if np.isfinite(loudness) else None


def _db(value: float) -> float:
    return float(20.0 * np.log10(max(value, 1e-10)))  # floor at -200 dB


def _classify(classifier: CategoryClassifier | None, vector: np.ndarray,
              name: str) -> CategoryGuess:
    if classifier is None:
        raise AnalysisError(f"uncategorised: no category word in {name!r} and no classifier")
    category, probability = classifier.predict(vector)
    return CategoryGuess(category, probability, "audio")


def _kind_and_tempo(prepared: Prepared, *, name: str, rule: CategoryRule,
                    rules: AnalysisRules, duration: float) -> tuple[str, TempoChoice]:
    audio_bpm, confidence = estimate_tempo(y=prepared.mono, sample_rate=ANALYSIS_RATE,
                                           min_bpm=LOOP_MIN_BPM, max_bpm=LOOP_MAX_BPM)
    onsets = prepared.descriptors["onset_rate"] * prepared.descriptors["duration_s"]
    fits = confidence >= _PULSE_CONFIDENCE and onsets >= _PULSE_ONSETS and any(
        abs(bpm / (audio_bpm * factor) - 1) < 0.03
        for bpm in length_candidates(duration=duration) for factor in (0.5, 1.0, 2.0))
    kind = choose_kind(named=kind_from_name(name, rules), rule=rule, pulse_fits_length=fits,
                       sustained=prepared.descriptors["tail_db"] >= _SUSTAIN_DB,
                       duration=duration)
    if kind != "loop":
        return kind, TempoChoice(None, 0.0, "none")
    return kind, choose_loop_tempo(name=name, duration=duration, audio_bpm=audio_bpm,
                                   audio_confidence=confidence, preferred=rule.bpm_range)


def _key(prepared: Prepared, *, name: str, rule: CategoryRule) -> tuple[str | None, float, str]:
    if not rule.tonal:
        return None, 0.0, "none"
    named = key_from_name(name)
    if named:
        return named, _NAME_KEY_CONFIDENCE, "filename"
    pitch = key_chroma(y=prepared.mono)
    if not pitch.any():
        return None, 0.0, "none"
    key, confidence = estimate_key(chroma=pitch)
    if confidence < _MIN_KEY_CONFIDENCE:
        return None, 0.0, "none"
    return key, confidence, "audio"
