"""`analyse_stem`: one decoded stem → levels, kind, tempo, key, category, tags, vector.

Pure: arrays in, an `AnalysisResult` out, no I/O. Levels are measured at the file's own
rate (peaks and clipping do not survive resampling); everything else reads the shared
`features.prepare` result at 22.05 kHz so it does not depend on the file's rate.

Every analysed stem is stored with `ANALYSIS_VERSION`; bump it whenever analysis code
changes its results, so `queries.stems_below_analysis_version` finds what to re-analyse.

Adding an analysis field takes four edits:

1. a field of `AnalysisResult` (and the code here that computes it);
2. a migration in ``store/schema.py`` adding the column (frozen SQL, with a default for the
   rows already stored);
3. the same field in ``store/records.StemRecord`` (the model derives its column from it);
4. one line in ``commands/library.stem_row`` to show it.

`AnalysisResult.to_columns` and the store's record reading follow the fields by name.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pyloudnorm

from daemon.categories import CategoryRule
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
from daemon.ingest.key import key_from_name
from daemon.ingest.kit_key import KeyChoice, key_from_name_or_audio
from daemon.ingest.kit_tempo import PULSE_RATIOS, PULSE_TOLERANCE, choose_loop_tempo
from daemon.ingest.rules import AnalysisRules
from daemon.ingest.tags import derive_tags
from daemon.ingest.tempo import (
    LOOP_MAX_BPM,
    LOOP_MIN_BPM,
    Pulse,
    TempoChoice,
    length_candidates,
    measure_pulse,
)
from daemon.store.records import column_name

#: A peak below this is silence (16-bit dither sits near -90 dBFS, room noise near -60).
SILENCE_DB = -70.0
_GATE_BLOCK_S = 0.4  # BS.1770 gating block: shorter clips have no integrated loudness
_CLIP_LEVEL = 0.999  # samples this close to the peak count as flattened tops
#: Onset coherence that counts as a pulse: lmms one-shots and noise read below 0.08,
#: real loops 0.1-0.2, clean synthesised loops 0.3 and more.
_PULSE_CONFIDENCE = 0.09
_PULSE_ONSETS = 4  # a pulse needs several hits, not one hit and its echo
_SUSTAIN_DB = -20.0  # a loop is still this loud in its final tenth; one-shots have decayed
#: The version of the analysis code, stored with every stem it analyses.
#: 2: the kick-band octave check, tempo and key weighed per kit, reasons, chroma stored.
#: 3: categories from the corpus with Hydrogen's drum kits; a stem whose key reads a fifth,
#: the relative or the parallel of its kit's follows the kit.
#: 4: a drum loop's backbeat settles its octave and only drum loops settle one; a kit's key
#: counts each pitch class's possible fundamental a fifth below.
#: 5: what decided loop or one-shot is stored, so the kit pass may take a stem its audio
#: read as a one-shot for a loop of whole bars at the kit's tempo; a drum loop's kick band
#: is read without log compression, and a loop without a kick settles no octave.
ANALYSIS_VERSION = 5


@dataclass(frozen=True)
class AnalysisResult:
    """Everything the library stores about one stem (see `analyse_stem`).

    Levels are in dB (``lufs`` in LUFS, None below one gating block), `duration` in
    seconds; `features` is the classifier's float32 feature vector. `embedding` and
    `embedding_model` are the search vector, filled in by the ingest worker after
    `analyse_stem` (None until then).
    """

    duration: float
    sample_rate: int
    channels: int
    peak_db: float
    lufs: float | None
    rms_db: float
    crest_db: float
    kind: str  # "loop" | "oneshot"
    kind_source: str  # "filename" | "category" | "audio" | "kit"
    bpm: float | None
    bpm_confidence: float
    bpm_source: str  # "filename" | "length" | "audio" | "kit" | "none"
    key: str | None
    key_confidence: float
    key_source: str  # "filename" | "audio" | "kit" | "none"
    category: str
    category_confidence: float
    category_source: str  # "filename" | "audio"
    tags: tuple[str, ...]
    descriptors: dict[str, float] = field(compare=False, repr=False)
    features: np.ndarray = field(compare=False, repr=False)
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)
    embedding_model: str | None = None
    analysis_version: int = ANALYSIS_VERSION
    # The evidence a kit's loops and tonal stems are weighed with (`ingest.kitpass`): the
    # audio pulse (`tempo.Pulse`) and the summed chroma (12 pitch classes from C).
    pulse_bpm: float | None = None
    pulse_confidence: float = 0.0
    pulse_kicks: bool = False  # the drums (backbeat or kick band) settled the pulse's octave
    chroma: np.ndarray | None = field(default=None, compare=False, repr=False)
    bpm_reason: str = ""  # why the tempo is uncertain, in words ("" when it is not)
    key_trusted: bool = False  # False: the renderer should check the key by ear
    key_reason: str = ""

    def to_columns(self) -> dict[str, Any]:
        """The stem row's column values, one per field (the store encodes tags,
        descriptors and vectors; it adds the kit, paths and content hash)."""
        return {column_name(item.name): getattr(self, item.name) for item in fields(self)}


def analyse_stem(decoded_audio: np.ndarray, sample_rate: int, *, name: str,
                 rules: AnalysisRules, classifier: CategoryClassifier | None = None,
                 category: str | None = None) -> AnalysisResult:
    """Analyse one stem.

    Parameters
    ----------
    decoded_audio : np.ndarray
        Float samples, shape ``(channels, frames)`` (or ``(frames,)`` for mono).
    sample_rate : int
        Samples per second of `decoded_audio`, in Hz.
    name : str
        The stem's path inside its kit; folder names are hints too.
    rules : AnalysisRules
        Name tokens, category rules and tag thresholds (``rules/``).
    classifier : CategoryClassifier, optional
        Used when no category token is in the name.
    category : str, optional
        The user's correction (re-analysis of a corrected stem): used instead of the name
        and the classifier, so kind, tempo and key follow it.

    Returns
    -------
    AnalysisResult
        Every stored value but the search vector (`embedding` is None).

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
    guess = (CategoryGuess(category, 1.0, "user") if category else
             category_from_name(name, rules) or _classify(classifier, prepared.vector, name))
    rule = rules.categories[guess.category]
    duration = audio.shape[1] / sample_rate
    (kind, kind_source), tempo, pulse = _kind_and_tempo(prepared, name=name, rule=rule,
                                                        rules=rules, duration=duration)
    key, pitch = _key(prepared, name=name, rule=rule)
    return AnalysisResult(
        duration=duration, sample_rate=int(sample_rate), channels=audio.shape[0],
        peak_db=levels["peak_db"], lufs=levels["lufs"], rms_db=levels["rms_db"],
        crest_db=levels["crest_db"], kind=kind, kind_source=kind_source, bpm=tempo.bpm,
        bpm_confidence=tempo.confidence, bpm_source=tempo.source, bpm_reason=tempo.reason,
        pulse_bpm=pulse.bpm, pulse_confidence=pulse.confidence, pulse_kicks=pulse.kicks,
        key=key.key,
        key_confidence=key.confidence, key_source=key.source, key_trusted=key.trusted,
        key_reason=key.reason, chroma=pitch, category=guess.category,
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
                    rules: AnalysisRules, duration: float
                    ) -> tuple[tuple[str, str], TempoChoice, Pulse]:
    """Kind and what decided it (`choose_kind`), tempo and the audio pulse it was read
    from."""
    measured = measure_pulse(y=prepared.mono, sample_rate=ANALYSIS_RATE,
                             min_bpm=LOOP_MIN_BPM, max_bpm=LOOP_MAX_BPM, drums=rule.percussive)
    audio_bpm, confidence = measured.bpm, measured.confidence
    pulse = Pulse(round(audio_bpm, 3), round(confidence, 4), measured.kicks)
    onsets = prepared.descriptors["onset_rate"] * prepared.descriptors["duration_s"]
    # A cross-rhythm (3:2, 5:4) of a whole-bar tempo is a loop's pulse too (a 1-bar perc loop
    # of triplets); an octave or the tempo itself the usual one.
    fits = confidence >= _PULSE_CONFIDENCE and onsets >= _PULSE_ONSETS and any(
        abs(bpm * ratio / audio_bpm - 1) < PULSE_TOLERANCE
        for bpm in length_candidates(duration=duration) for ratio in PULSE_RATIOS)
    kind = choose_kind(named=kind_from_name(name, rules), rule=rule, pulse_fits_length=fits,
                       sustained=prepared.descriptors["tail_db"] >= _SUSTAIN_DB,
                       duration=duration)
    if kind[0] != "loop":
        return kind, TempoChoice(None, 0.0, "none"), pulse
    return kind, choose_loop_tempo(name=name, duration=duration, audio_bpm=pulse.bpm,
                                   audio_confidence=pulse.confidence, kicks=pulse.kicks,
                                   preferred=rule.bpm_range), pulse


def _key(prepared: Prepared, *, name: str, rule: CategoryRule
         ) -> tuple[KeyChoice, np.ndarray | None]:
    """The stem's own key and, when it was read from the audio, the chroma it was read from
    (kept for the kit's key consensus)."""
    if not rule.tonal:
        return KeyChoice(None, 0.0, "none", False), None
    named = key_from_name(name)
    if named:
        return key_from_name_or_audio(named=named, chroma=None), None
    pitch = key_chroma(y=prepared.mono).astype(np.float32)
    return key_from_name_or_audio(named=None, chroma=pitch), pitch
