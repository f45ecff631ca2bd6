"""The CLAP adapter, run without laion_clap or weights through clearly named test doubles.

`FakeClapModel` stands in for a loaded ``laion_clap.CLAP_Module``; `FakeTorchModule` and
`FakeLaionClapModule` stand in for the packages when the loading glue is tested. Nothing
here measures CLAP quality: the fake's vectors are band-energy profiles, chosen so that
ranking by a text vector has a known right answer.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from daemon.config import EmbeddingSettings
from daemon.embed.backend import get_backend, needs_reembedding
from daemon.embed.clap import (
    CLAP_DIM,
    CLAP_RATE,
    CLAP_SAMPLES,
    ClapBackend,
    extract_state_dict,
    infer_architecture,
    load_laion_clap,
    resolve_device,
    to_clap_input,
)
from daemon.embed.features import FeaturesBackend
from daemon.embed.index import VectorIndex
from daemon.errors import AnalysisError, EmbeddingError

_BAND_EDGES = np.geomspace(20.0, 24000.0, 17)
_PROJECTION = np.random.default_rng(1234).standard_normal((16, CLAP_DIM))
_TEXT_PROFILES = {"low": np.linspace(1.0, -1.0, 16), "high": np.linspace(-1.0, 1.0, 16)}


class FakeClapModel:
    """TEST DOUBLE for ``laion_clap.CLAP_Module``: no network, no weights, deterministic.

    Audio -> centred log energy in 16 log-spaced bands, projected to 512 dims by a fixed
    random matrix; text containing "low" or "high" -> a falling or rising band profile
    through the same projection. Records every batch it is given.
    """

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.texts: list[list[str]] = []

    def get_audio_embedding_from_data(self, x: np.ndarray, use_tensor: bool = False):
        assert use_tensor is False
        self.batches.append(np.array(x))
        power = np.abs(np.fft.rfft(x, axis=1)) ** 2
        freqs = np.fft.rfftfreq(x.shape[1], 1 / CLAP_RATE)
        band = np.digitize(freqs, _BAND_EDGES[1:-1])
        energy = np.stack([np.bincount(band, weights=row, minlength=16) for row in power])
        profile = np.log10(energy + 1e-9)
        return (profile - profile.mean(axis=1, keepdims=True)) @ _PROJECTION

    def get_text_embedding(self, x: list[str]):
        self.texts.append(list(x))
        profiles = [sum(p for word, p in _TEXT_PROFILES.items() if word in text) for text in x]
        return np.stack(profiles) @ _PROJECTION


class CountingFactory:
    """TEST DOUBLE for the model factory: hands out one `FakeClapModel`, counts the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str]] = []
        self.model = FakeClapModel()

    def __call__(self, checkpoint: Path, device: str) -> FakeClapModel:
        self.calls.append((checkpoint, device))
        return self.model


@pytest.fixture
def hub_env(monkeypatch):
    """Unset the hub switches and restore them afterwards (the loader sets them)."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "placeholder")  # registers the original for restoring
        monkeypatch.delenv(name)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "630k-audioset-best.pt"
    path.write_bytes(b"not really weights")
    return path


def make_backend(checkpoint: Path, batch_size: int = 2) -> tuple[ClapBackend, CountingFactory]:
    factory = CountingFactory()
    backend = ClapBackend(checkpoint=checkpoint, batch_size=batch_size, device="auto",
                          model_factory=factory)
    return backend, factory


def tone(freq: float, seconds: float, sr: int) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)


# --- batching, resampling, storage-ready output -----------------------------------------


def test_audio_is_embedded_in_batches_of_batch_size(checkpoint):
    backend, factory = make_backend(checkpoint, batch_size=2)
    batch = [(tone(100.0 * (i + 1), 1.0, 44100), 44100) for i in range(5)]
    vectors = backend.embed_audio(batch)
    assert [len(x) for x in factory.model.batches] == [2, 2, 1]
    assert vectors.shape == (5, CLAP_DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    stored = np.frombuffer(vectors[3].tobytes(), dtype=np.float32)  # as the store keeps it
    assert np.array_equal(stored, vectors[3])
    assert backend.embed_audio([]).shape == (0, CLAP_DIM)


def test_model_loads_lazily_once_with_checkpoint_and_device(checkpoint):
    backend, factory = make_backend(checkpoint)
    assert factory.calls == []
    backend.embed_audio([(tone(440.0, 0.5, 48000), 48000)])
    backend.embed_text(["low"])
    assert factory.calls == [(checkpoint, "auto")]
    assert backend.model_name == "clap:630k-audioset-best.pt" and backend.dim == CLAP_DIM


def test_clips_are_48k_mono_10s_with_the_pitch_preserved(checkpoint):
    backend, factory = make_backend(checkpoint)
    stereo = np.stack([tone(1000.0, 2.0, 44100), tone(1000.0, 2.0, 44100)])
    backend.embed_audio([(stereo, 44100), (stereo.T, 44100)])
    clips = factory.model.batches[0]
    assert clips.shape == (2, CLAP_SAMPLES) and clips.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(clips[0][: 2 * CLAP_RATE]))
    assert np.fft.rfftfreq(2 * CLAP_RATE, 1 / CLAP_RATE)[spectrum.argmax()] == pytest.approx(
        1000.0, abs=1.0)
    assert np.allclose(clips[0], clips[1], atol=1e-6)


def test_short_stems_repeat_whole_and_long_stems_keep_their_first_10_s():
    loop = np.random.default_rng(0).uniform(-0.5, 0.5, int(1.5 * CLAP_RATE))
    clip = to_clap_input(y=loop, sample_rate=CLAP_RATE)
    copy = loop.size
    assert np.allclose(clip[:copy], loop, atol=1e-7)
    assert np.allclose(clip[5 * copy:6 * copy], loop, atol=1e-7)  # six whole copies: 9 s
    assert not np.any(clip[6 * copy:])  # the last second stays silent, no cut-off copy
    long = np.random.default_rng(1).uniform(-0.5, 0.5, 12 * CLAP_RATE)
    assert np.allclose(to_clap_input(y=long, sample_rate=CLAP_RATE), long[:CLAP_SAMPLES],
                       atol=1e-7)
    loud = to_clap_input(y=4.0 * tone(100.0, 1.0, CLAP_RATE), sample_rate=CLAP_RATE)
    assert np.max(np.abs(loud)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("samples, rate", [(np.array([]), 48000), (np.array([np.inf]), 48000),
                                           (np.ones(10), 0), (np.ones(1), 192000)])
def test_unusable_audio_raises_analysis_error(samples, rate):
    with pytest.raises(AnalysisError):
        to_clap_input(y=samples, sample_rate=rate)


# --- ranking -----------------------------------------------------------------------------


def test_text_vectors_rank_stems_through_the_index(checkpoint):
    backend, _ = make_backend(checkpoint, batch_size=3)
    sounds = {1: tone(60.0, 2.0, 44100), 2: tone(9000.0, 1.0, 44100),
              3: tone(90.0, 3.0, 22050), 4: tone(6000.0, 2.0, 48000)}
    rates = {1: 44100, 2: 44100, 3: 22050, 4: 48000}
    vectors = backend.embed_audio([(sounds[i], rates[i]) for i in sounds])
    index = VectorIndex(backend.dim, model_name=backend.model_name)
    index.add(list(sounds), vectors)
    low, high = backend.embed_text(["low rumble", "high air"])
    assert {stem_id for stem_id, _ in index.nearest(low, 2)} == {1, 3}
    assert {stem_id for stem_id, _ in index.nearest(high, 2)} == {2, 4}
    assert backend.embed_text([]).shape == (0, CLAP_DIM)


def test_bad_model_output_and_offline_tokenizer_become_embedding_errors(checkpoint):
    backend, factory = make_backend(checkpoint)
    factory.model.get_audio_embedding_from_data = lambda x, use_tensor=False: np.ones((1, 3))
    with pytest.raises(EmbeddingError, match="shape"):
        backend.embed_audio([(tone(100.0, 0.5, 48000), 48000)])

    def offline(texts):
        raise OSError("We couldn't connect to the hub to load roberta-base")

    factory.model.get_text_embedding = offline
    with pytest.raises(EmbeddingError, match="roberta-base") as caught:
        backend.embed_text(["dark pad"])
    assert "HF_HUB_OFFLINE=0" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


# --- setup errors ------------------------------------------------------------------------


def settings(backend: str, checkpoint: Path | None) -> EmbeddingSettings:
    return EmbeddingSettings(backend=backend, clap_checkpoint=checkpoint, batch_size=4,
                             device="auto")


def test_missing_package_and_checkpoint_are_reported_together(monkeypatch):
    monkeypatch.setitem(sys.modules, "laion_clap", None)  # as if not installed
    with pytest.raises(EmbeddingError) as caught:
        get_backend(settings("clap", None))
    message = str(caught.value)
    assert "pip install 'traum-engine[clap]'" in message
    assert "pip install torch==2.13.0" in message
    assert "embedding.clap_checkpoint" in message and "config.toml" in message
    assert "630k-audioset-best.pt" in message
    assert "music_audioset_epoch_15_esc_90.14.pt" in message
    assert "never downloads" in message


def test_unreadable_checkpoint_is_named(tmp_path):
    for path in (tmp_path / "missing.pt", tmp_path):
        with pytest.raises(EmbeddingError, match="embedding.clap_checkpoint") as caught:
            ClapBackend(checkpoint=path, batch_size=4, device="auto",
                        model_factory=CountingFactory())
        assert str(path) in str(caught.value)


def test_importing_the_absent_package_says_what_to_install(monkeypatch, checkpoint, hub_env):
    monkeypatch.setitem(sys.modules, "laion_clap", None)
    with pytest.raises(EmbeddingError, match=r"pip install 'traum-engine\[clap\]'"):
        load_laion_clap(checkpoint, "cpu")


# --- loading glue with package doubles -------------------------------------------------


class FakeLaionClapModule(types.ModuleType):
    """TEST DOUBLE for the ``laion_clap`` package: records how `CLAP_Module` is built."""

    def __init__(self) -> None:
        super().__init__("laion_clap")
        self.built: list[dict] = []
        self.loaded: list[dict] = []
        outer = self

        class CLAP_Module:  # noqa: N801 - mirrors laion_clap's class name
            def __init__(self, **kwargs):
                outer.built.append(kwargs)
                self.model = types.SimpleNamespace(load_state_dict=outer.loaded.append)

        self.CLAP_Module = CLAP_Module


class FakeTorchModule(types.ModuleType):
    """TEST DOUBLE for ``torch``: `load` returns a canned checkpoint and records its kwargs."""

    def __init__(self, payload=None, error: Exception | None = None) -> None:
        super().__init__("torch")
        self.payload, self.error, self.load_calls, self.allowed = payload, error, [], []
        self.cuda = types.SimpleNamespace(is_available=lambda: False)
        self.serialization = types.SimpleNamespace(safe_globals=self._safe_globals)

    @contextlib.contextmanager
    def _safe_globals(self, allowed):
        self.allowed.extend(allowed)
        yield

    def load(self, path, **kwargs):
        self.load_calls.append((path, kwargs))
        if self.error:
            raise self.error
        return self.payload


def htsat_state(width: int, *, fusion: bool = False, prefix: str = "") -> dict:
    state = {f"{prefix}audio_branch.patch_embed.proj.weight": np.zeros((width, 1, 4, 4)),
             f"{prefix}text_branch.embeddings.position_ids": np.arange(514),
             f"{prefix}logit_scale_a": np.zeros(())}
    if fusion:
        state[f"{prefix}audio_branch.patch_embed.mel_conv2d.weight"] = np.zeros((width, 1, 4, 12))
    return state


def test_loading_uses_weights_only_and_builds_the_matching_architecture(monkeypatch, checkpoint,
                                                                       hub_env):
    torch = FakeTorchModule({"epoch": 15, "state_dict": htsat_state(128, prefix="module.")})
    laion = FakeLaionClapModule()
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "laion_clap", laion)
    argv = list(sys.argv)
    load_laion_clap(checkpoint, "auto")
    assert torch.load_calls == [(checkpoint, {"map_location": "cpu", "weights_only": True})]
    assert laion.built == [{"enable_fusion": False, "amodel": "HTSAT-base", "device": "cpu"}]
    assert sorted(laion.loaded[0]) == ["audio_branch.patch_embed.proj.weight", "logit_scale_a"]
    assert any("numpy.core.multiarray.scalar" in str(item) for item in torch.allowed)
    assert os.environ["HF_HUB_OFFLINE"] == "1" == os.environ["TRANSFORMERS_OFFLINE"]
    assert sys.argv == argv


def test_a_checkpoint_with_pickled_code_is_refused(monkeypatch, checkpoint, hub_env):
    monkeypatch.setitem(sys.modules, "torch", FakeTorchModule(
        error=pickle.UnpicklingError("Weights only load failed: GLOBAL os.system")))
    monkeypatch.setitem(sys.modules, "laion_clap", FakeLaionClapModule())
    with pytest.raises(EmbeddingError, match="weights_only=True refused"):
        load_laion_clap(checkpoint, "cpu")


def test_state_dict_cleaning_and_architecture_inference():
    cleaned = extract_state_dict({"state_dict": htsat_state(96, prefix="module.")}, source="x")
    assert "text_branch.embeddings.position_ids" not in cleaned
    assert infer_architecture(cleaned) == ("HTSAT-tiny", False)
    assert infer_architecture(htsat_state(128, fusion=True)) == ("HTSAT-base", True)
    with pytest.raises(EmbeddingError, match="no CLAP state dict"):
        extract_state_dict([1, 2, 3], source="x")
    with pytest.raises(EmbeddingError, match="not a LAION-CLAP HTSAT model"):
        infer_architecture({"audio_branch.conv.weight": np.zeros((64, 1))})
    with pytest.raises(EmbeddingError, match="found 64"):
        infer_architecture(htsat_state(64))


def test_device_resolution():
    assert resolve_device("auto", cuda_available=True) == "cuda"
    assert resolve_device("auto", cuda_available=False) == "cpu"
    assert resolve_device("cpu", cuda_available=True) == "cpu"
    with pytest.raises(EmbeddingError, match="no CUDA device"):
        resolve_device("cuda", cuda_available=False)


# --- backend switching --------------------------------------------------------------------


def test_backend_choice_and_reembedding_decision(checkpoint):
    features = get_backend(settings("features", None))
    assert isinstance(features, FeaturesBackend)
    clap, _ = make_backend(checkpoint)
    assert needs_reembedding(None, features)
    assert not needs_reembedding("features-v1", features)
    assert needs_reembedding("features-v1", clap)
    assert not needs_reembedding("clap:630k-audioset-best.pt", clap)
    assert needs_reembedding("clap:music_audioset_epoch_15_esc_90.14.pt", clap)
    with pytest.raises(EmbeddingError, match="unknown embedding.backend"):
        get_backend(settings("word2vec", None))
