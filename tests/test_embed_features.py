"""The `features-v1` vector: similarity on synthesised stems, invariances, robustness, scaling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from daemon.embed.features import (
    _CENTER,
    _SCALE,
    FEATURES_DIM,
    FEATURES_MODEL,
    GROUP_SIZES,
    FeaturesBackend,
    describe_audio,
    embed_features,
)
from daemon.errors import AnalysisError

# --- a small procedural corpus with known classes --------------------------------------


def _time(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(seconds * sr)) / sr


def _lowpass(x: np.ndarray, cutoff: float, sr: int) -> np.ndarray:
    """One-pole low-pass: enough to shape synthetic timbres."""
    a = np.exp(-2 * np.pi * cutoff / sr)
    return lfilter([1 - a], [1, -a], x)


def kick(sr: int, *, f0: float = 50.0, decay: float = 0.25, sweep: float = 4.0) -> np.ndarray:
    t = _time(0.6, sr)
    freq = f0 * (1 + (sweep - 1) * np.exp(-t / 0.03))
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / decay * 3)


def snare(sr: int, rng: np.random.Generator, *, tone: float = 190.0,
          decay: float = 0.15) -> np.ndarray:
    t = _time(0.4, sr)
    noise = np.diff(rng.standard_normal(t.size + 1))
    return (0.5 * np.sin(2 * np.pi * tone * t) + noise) * np.exp(-t / decay * 3)


def hat(sr: int, rng: np.random.Generator, *, decay: float = 0.05) -> np.ndarray:
    t = _time(0.25, sr)
    noise = np.diff(np.diff(rng.standard_normal(t.size + 2)))
    return noise * np.exp(-t / decay * 3)


def saw(freq: float, t: np.ndarray, *, detune: float = 0.0) -> np.ndarray:
    return 2 * ((t * freq * (1 + detune)) % 1.0) - 1


def pad(sr: int, *, root: float = 220.0, cutoff: float = 1500.0,
        seconds: float = 4.0) -> np.ndarray:
    t = _time(seconds, sr)
    chord = sum(saw(root * ratio, t, detune=detune)
                for ratio in (1.0, 1.2, 1.5) for detune in (-0.004, 0.004))
    attack = np.minimum(t / 0.8, 1.0)
    return _lowpass(chord, cutoff, sr) * attack


def bass_loop(sr: int, *, root: float = 55.0, bpm: float = 124.0, cutoff: float = 600.0,
              bars: int = 2) -> np.ndarray:
    step = 60.0 / bpm / 2  # eighth notes
    t = _time(step, sr)
    note = _lowpass(saw(root, t), cutoff, sr) * np.exp(-t / step * 2)
    notes = [note * (0.6 if index % 2 else 1.0) for index in range(bars * 8)]
    return np.concatenate(notes)


def drum_loop(sr: int, rng: np.random.Generator, *, bpm: float = 128.0,
              bars: int = 2) -> np.ndarray:
    step = int(60.0 / bpm / 4 * sr)  # sixteenths
    out = np.zeros(step * 16 * bars + sr)
    for index in range(16 * bars):
        sound = kick(sr) if index % 4 == 0 else hat(sr, rng) * 0.4 if index % 2 == 0 else None
        if sound is not None:
            out[index * step:index * step + sound.size] += sound
    return out[: step * 16 * bars]


def noise_atmo(sr: int, rng: np.random.Generator, *, cutoff: float = 800.0,
               seconds: float = 4.0) -> np.ndarray:
    t = _time(seconds, sr)
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t)
    return _lowpass(rng.standard_normal(t.size), cutoff, sr) * swell


def pluck(sr: int, *, freq: float = 440.0, bpm: float = 120.0) -> np.ndarray:
    step = 60.0 / bpm / 4
    t = _time(step, sr)
    pattern = (1.0, 1.5, 1.2, 2.0)
    notes = [_lowpass(saw(freq * ratio, t), 3000, sr) * np.exp(-t / 0.05) for ratio in pattern]
    return np.concatenate(notes * 8)


def riser(sr: int, rng: np.random.Generator, *, seconds: float = 3.0) -> np.ndarray:
    t = _time(seconds, sr)
    sweep = np.sin(2 * np.pi * np.cumsum(200 + 2000 * (t / seconds) ** 2) / sr)
    return (sweep + 0.3 * rng.standard_normal(t.size)) * (t / seconds)


def synthetic_corpus(count: int = 240, seed: int = 7) -> list[tuple[str, np.ndarray, int]]:
    """Varied labelled stems at mixed sample rates; ``(class, samples, sample_rate)``."""
    rng = np.random.default_rng(seed)
    makers = {
        "kick": lambda sr: kick(sr, f0=rng.uniform(40, 70), decay=rng.uniform(0.1, 0.5),
                                sweep=rng.uniform(2, 6)),
        "snare": lambda sr: snare(sr, rng, tone=rng.uniform(150, 260), decay=rng.uniform(0.08, .3)),
        "hat": lambda sr: hat(sr, rng, decay=rng.uniform(0.02, 0.2)),
        "pad": lambda sr: pad(sr, root=rng.uniform(110, 330), cutoff=rng.uniform(600, 4000),
                              seconds=rng.uniform(2, 6)),
        "bass": lambda sr: bass_loop(sr, root=rng.uniform(40, 90), bpm=rng.uniform(100, 140),
                                     cutoff=rng.uniform(200, 1500)),
        "drums": lambda sr: drum_loop(sr, rng, bpm=rng.uniform(90, 150)),
        "atmo": lambda sr: noise_atmo(sr, rng, cutoff=rng.uniform(200, 5000)),
        "pluck": lambda sr: pluck(sr, freq=rng.uniform(220, 880), bpm=rng.uniform(100, 140)),
        "riser": lambda sr: riser(sr, rng, seconds=rng.uniform(1.5, 4)),
    }
    names = list(makers)
    corpus = []
    for index in range(count):
        name = names[index % len(names)]
        sr = int(rng.choice([22050, 44100, 48000]))
        corpus.append((name, makers[name](sr), sr))
    return corpus


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- behaviour --------------------------------------------------------------------------

SR = 44100


def test_vector_is_unit_norm_float32_and_of_fixed_length():
    for samples in (kick(SR), pad(SR, seconds=2.0), hat(SR, np.random.default_rng(1))):
        vector = embed_features(y=samples, sample_rate=SR)
        assert vector.dtype == np.float32
        assert vector.shape == (FEATURES_DIM,)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert 64 <= FEATURES_DIM <= 128


def test_similar_kicks_are_closer_than_kick_and_pad():
    kick_a = embed_features(y=kick(SR, f0=50, decay=0.25), sample_rate=SR)
    kick_b = embed_features(y=kick(SR, f0=55, decay=0.3, sweep=4.5), sample_rate=SR)
    pad_a = embed_features(y=pad(SR, seconds=3.0), sample_rate=SR)
    assert cosine(kick_a, kick_b) > 0.9
    assert cosine(kick_a, kick_b) > cosine(kick_a, pad_a) + 0.3


def test_same_class_neighbours_dominate_in_the_corpus():
    corpus = synthetic_corpus(count=72, seed=11)
    labels = [name for name, _, _ in corpus]
    matrix = np.stack([embed_features(y=y, sample_rate=sr) for _, y, sr in corpus])
    scores = matrix @ matrix.T
    np.fill_diagonal(scores, -np.inf)
    nearest = scores.argmax(axis=1)
    agreement = np.mean([labels[i] == labels[j] for i, j in enumerate(nearest)])
    assert agreement >= 0.85  # chance is 1/9


def test_same_input_gives_the_same_vector():
    samples = bass_loop(SR)
    first = embed_features(y=samples, sample_rate=SR)
    second = embed_features(y=samples.copy(), sample_rate=SR)
    assert np.array_equal(first, second)


def test_sample_rate_invariance_44k1_vs_48k():
    for make in (lambda sr: pad(sr, seconds=2.0),
                 lambda sr: drum_loop(sr, np.random.default_rng(3)), kick):
        at_44k = embed_features(y=make(44100), sample_rate=44100)
        at_48k = embed_features(y=make(48000), sample_rate=48000)
        assert cosine(at_44k, at_48k) > 0.98


def test_gain_and_channel_layout_do_not_change_the_vector():
    mono = pluck(SR)
    reference = embed_features(y=mono, sample_rate=SR)
    stereo = np.stack([mono, mono]) * 0.1
    assert cosine(embed_features(y=stereo, sample_rate=SR), reference) > 0.999
    assert cosine(embed_features(y=stereo.T, sample_rate=SR), reference) > 0.999


@pytest.mark.parametrize("samples", [
    np.zeros(SR), np.full(SR, 1e-12), 1e-7 * np.random.default_rng(2).standard_normal(SR),
    np.array([0.5]), np.zeros(10), kick(SR)[:300],
])
def test_silent_or_tiny_input_gives_a_finite_unit_vector(samples):
    vector = embed_features(y=samples, sample_rate=SR)
    assert np.all(np.isfinite(vector))
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("samples, rate", [
    (np.array([]), SR), (np.array([0.0, np.nan, 0.0]), SR), (np.zeros((2, 2, 2)), SR),
    (np.zeros(100), 0),
])
def test_unusable_input_raises_analysis_error(samples, rate):
    with pytest.raises(AnalysisError):
        embed_features(y=samples, sample_rate=rate)


def arpeggio(root: float, intervals: tuple[int, ...], sr: int = SR) -> np.ndarray:
    t = _time(0.25, sr)
    notes = []
    for semitones in intervals:
        freq = root * 2 ** (semitones / 12)
        tone = sum(np.sin(2 * np.pi * freq * harmonic * t) / harmonic for harmonic in (1, 2, 3))
        notes.append(tone * np.exp(-t / 0.2))
    return np.concatenate(notes * 2)


def test_pitch_descriptors_are_nearly_transposition_invariant():
    def pitch(samples: np.ndarray) -> np.ndarray:
        return (describe_audio(y=samples, sample_rate=SR) / _SCALE)[-GROUP_SIZES["pitch"]:]

    minor_seventh = (0, 3, 7, 10, 7, 3)
    reference = pitch(arpeggio(440.0, minor_seventh))
    for shift in (1, 3, -5, 7):
        transposed = pitch(arpeggio(440.0 * 2 ** (shift / 12), minor_seventh))
        other_content = pitch(arpeggio(440.0 * 2 ** (shift / 12), (0, 4, 8, 0, 4, 8)))
        assert (np.linalg.norm(transposed - reference)
                < 0.4 * np.linalg.norm(other_content - reference))


def test_scaling_constants_match_the_synthetic_corpus_and_no_dimension_dominates():
    raw = np.stack([describe_audio(y=y, sample_rate=sr) for _, y, sr in synthetic_corpus()])
    median = np.median(raw, axis=0)
    sigma = np.maximum(raw.std(axis=0), 1e-3)
    # the stored constants were derived from this corpus, rounded to two digits
    assert np.all(np.abs(median - _CENTER) <= 0.05 * sigma + 0.05 * np.abs(median) + 1e-6)
    assert np.allclose(sigma, _SCALE, rtol=0.05, atol=1e-6)
    spread = np.stack([embed_features(y=y, sample_rate=sr)
                       for _, y, sr in synthetic_corpus(90, seed=5)]).var(axis=0)
    assert spread.max() / spread.sum() < 0.1


def test_backend_batches_and_has_no_text_side():
    backend = FeaturesBackend()
    batch = [(kick(SR), SR), (pad(22050, seconds=2.0), 22050)]
    vectors = backend.embed_audio(batch)
    assert vectors.shape == (2, backend.dim) and vectors.dtype == np.float32
    assert np.array_equal(vectors[0], embed_features(y=batch[0][0], sample_rate=SR))
    assert backend.model_name == FEATURES_MODEL
    assert backend.embed_text(["dark pad"]) is None
    assert backend.embed_audio([]).shape == (0, backend.dim)
