"""The optional LAION-CLAP backend: audio and text in one 512-dimensional space.

Setup is the user's: ``pip install 'traum-engine[clap]'`` and a checkpoint file they
downloaded themselves, named by ``embedding.clap_checkpoint`` in config.toml. Nothing here
downloads anything: the checkpoint is loaded with ``torch.load(..., weights_only=True)``
(plain tensors and numpy scalars only, no pickled code), and the Hugging Face hub is put in
offline mode before `laion_clap` is imported, because laion_clap builds its text encoder from
the ``roberta-base`` tokenizer and weights, which must already be in the local cache.

`laion_clap` and `torch` are imported only when the model is first used. The model itself is
injected as a `ClapModel` (the slice of ``laion_clap.CLAP_Module`` used here) by a
`ModelFactory`, which is how the tests run the adapter without the package or weights.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pickle
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soxr

from daemon.errors import AnalysisError, EmbeddingError

CLAP_RATE = 48000  # LAION-CLAP's audio front end expects 48 kHz mono
CLAP_SAMPLES = 10 * CLAP_RATE  # ...in clips of exactly 10 s
CLAP_DIM = 512  # joint audio-text embedding size of every published LAION-CLAP checkpoint
INSTALL_HINT = ("pip install 'traum-engine[clap]' (on a CPU-only machine run "
                "pip install torch==2.13.0 first, so pip does not pull a multi-GB CUDA build)")
CHECKPOINT_HINT = (
    "download a LAION-CLAP checkpoint yourself, 630k-audioset-best.pt (general audio) or "
    "music_audioset_epoch_15_esc_90.14.pt (music), from the LAION-AI/CLAP release on GitHub "
    "or the lukewys/laion_clap repository on Hugging Face, and set "
    'embedding.clap_checkpoint = "/path/to/the/file.pt" in config.toml; '
    "Traum-Engine never downloads it for you")
ROBERTA_HINT = (
    "laion_clap builds its text encoder from the Hugging Face model 'roberta-base', which is "
    "not in the local Hugging Face cache, and Traum-Engine keeps the hub offline. To allow "
    "this one download, run once: HF_HUB_OFFLINE=0 python -c \"from transformers import "
    "RobertaModel, RobertaTokenizer; RobertaTokenizer.from_pretrained('roberta-base'); "
    "RobertaModel.from_pretrained('roberta-base')\"")
_HTSAT_BY_WIDTH = {96: "HTSAT-tiny", 128: "HTSAT-base", 256: "HTSAT-large"}
_PATCH_KEY = "audio_branch.patch_embed.proj.weight"  # its first axis is the HTSAT width
_FUSION_PREFIX = "audio_branch.patch_embed.mel_conv2d."  # present only in fusion models


class ClapModel(Protocol):
    """What the adapter calls on a loaded ``laion_clap.CLAP_Module``."""

    def get_audio_embedding_from_data(self, x: np.ndarray, use_tensor: bool = False) -> Any: ...

    def get_text_embedding(self, x: list[str]) -> Any: ...


ModelFactory = Callable[[Path, str], ClapModel]  # (checkpoint, device setting) -> model


class ClapBackend:
    """LAION-CLAP as an `EmbeddingBackend`; the model loads on first use.

    Construction checks the setup (package importable, checkpoint readable) and raises one
    `EmbeddingError` listing every problem, so `traum` reports it at start-up.
    """

    def __init__(self, *, checkpoint: Path | None, batch_size: int, device: str,
                 model_factory: ModelFactory | None = None) -> None:
        problems = [] if model_factory else missing_package_problems()
        problems += checkpoint_problems(checkpoint)
        if problems:
            raise EmbeddingError("CLAP backend not ready: " + "; ".join(problems))
        assert checkpoint is not None  # checkpoint_problems reported None
        if batch_size < 1:
            raise EmbeddingError(f"embedding.batch_size must be >= 1 (got {batch_size})")
        self.checkpoint = checkpoint
        self.batch_size = batch_size
        self.device = device
        self.model_name = f"clap:{checkpoint.name}"
        self.dim = CLAP_DIM
        self._factory = model_factory or load_laion_clap
        self._model: ClapModel | None = None

    def embed_audio(self, batch: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
        """Embed ``(samples, rate)`` pairs in chunks of `batch_size`; unit-norm float32 rows."""
        chunks = []
        for start in range(0, len(batch), self.batch_size):
            clips = np.stack([to_clap_input(y=y, sample_rate=rate)
                              for y, rate in batch[start:start + self.batch_size]])
            try:
                raw = self.model().get_audio_embedding_from_data(x=clips, use_tensor=False)
            except RuntimeError as exc:  # typically out of (GPU) memory
                raise EmbeddingError(f"CLAP audio embedding failed ({exc}); a smaller "
                                     "embedding.batch_size may help") from exc
            chunks.append(self._checked(raw, len(clips)))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed prompts into the audio space; ``(len(texts), 512)`` unit-norm float32."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        try:
            raw = self.model().get_text_embedding(list(texts))
        except (OSError, ValueError) as exc:
            raise EmbeddingError(f"CLAP text embedding failed: {ROBERTA_HINT}") from exc
        except RuntimeError as exc:
            raise EmbeddingError(f"CLAP text embedding failed: {exc}") from exc
        return self._checked(raw, len(texts))

    def model(self) -> ClapModel:
        """The loaded model (loaded once, on first call)."""
        if self._model is None:
            self._model = self._factory(self.checkpoint, self.device)
        return self._model

    def _checked(self, raw: Any, count: int) -> np.ndarray:
        vectors = np.asarray(raw, dtype=np.float32)
        if vectors.shape != (count, self.dim) or not np.all(np.isfinite(vectors)):
            raise EmbeddingError(f"CLAP returned vectors of shape {vectors.shape}, expected "
                                 f"({count}, {self.dim}) finite values")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


def to_clap_input(*, y: np.ndarray, sample_rate: int) -> np.ndarray:
    """One 10 s, 48 kHz mono float32 clip, as CLAP was trained on.

    Longer stems keep their first 10 s; shorter ones are repeated whole (a loop stays on
    its grid) and the remainder is zero-filled, like laion_clap's own "repeatpad". Audio
    peaking above full scale is scaled down, since laion_clap clips at +-1 when it quantises.
    """
    samples = np.asarray(y, dtype=np.float64)
    if samples.ndim == 2:
        samples = samples.mean(axis=int(np.argmin(samples.shape)))
    if samples.ndim != 1 or samples.size == 0 or not np.all(np.isfinite(samples)):
        raise AnalysisError(f"cannot embed audio of shape {np.shape(y)} (empty or not finite)")
    if sample_rate <= 0:
        raise AnalysisError(f"cannot embed audio at sample rate {sample_rate}")
    if sample_rate != CLAP_RATE:
        samples = soxr.resample(samples, sample_rate, CLAP_RATE, quality="HQ")
    if samples.size == 0:
        raise AnalysisError("audio too short to embed: no sample left at 48 kHz")
    peak = float(np.max(np.abs(samples)))
    if peak > 1.0:
        samples = samples / peak
    if samples.size < CLAP_SAMPLES:
        samples = np.tile(samples, CLAP_SAMPLES // samples.size)
    clip = np.zeros(CLAP_SAMPLES, dtype=np.float32)
    clip[: min(samples.size, CLAP_SAMPLES)] = samples[:CLAP_SAMPLES]
    return clip


def missing_package_problems() -> list[str]:
    """Setup problems with the optional packages, without importing them."""
    missing = [name for name in ("laion_clap", "torch") if importlib.util.find_spec(name) is None]
    if not missing:
        return []
    return [f"{' and '.join(missing)} not installed: run {INSTALL_HINT}"]


def checkpoint_problems(checkpoint: Path | None) -> list[str]:
    """Setup problems with the configured checkpoint path."""
    if checkpoint is None:
        return [f"embedding.clap_checkpoint is not set in config.toml: {CHECKPOINT_HINT}"]
    try:
        with open(checkpoint, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        return [f"cannot read embedding.clap_checkpoint {checkpoint} ({exc.strerror or exc}): "
                f"{CHECKPOINT_HINT}"]
    return []


def load_laion_clap(checkpoint: Path, device: str) -> ClapModel:
    """Build the LAION-CLAP model matching `checkpoint` and load its weights safely."""
    torch, laion_clap = import_clap_packages()
    state = read_state_dict(checkpoint, torch=torch)
    amodel, fusion = infer_architecture(state)
    target = resolve_device(device, cuda_available=bool(torch.cuda.is_available()))
    try:
        model = laion_clap.CLAP_Module(enable_fusion=fusion, amodel=amodel, device=target)
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot build the CLAP model: {ROBERTA_HINT}") from exc
    try:
        model.model.load_state_dict(state)
    except RuntimeError as exc:
        raise EmbeddingError(f"{checkpoint} does not fit the {amodel} CLAP model: {exc}") from exc
    return model


def import_clap_packages() -> tuple[Any, Any]:
    """Import torch and laion_clap with the hub offline and a clean ``sys.argv``.

    laion_clap parses ``sys.argv`` with its training argument parser at import, which would
    choke on traum's own arguments, and loads the roberta tokenizer at import.
    """
    # setdefault: a user who explicitly sets HF_HUB_OFFLINE=0 has asked for downloads
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        with _bare_argv():
            torch = importlib.import_module("torch")
            laion_clap = importlib.import_module("laion_clap")
    except ImportError as exc:
        raise EmbeddingError(f"CLAP backend not ready: {exc.name or exc} is not installed: "
                             f"run {INSTALL_HINT}") from exc
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot import laion_clap: {ROBERTA_HINT}") from exc
    return torch, laion_clap


def read_state_dict(checkpoint: Path, *, torch: Any) -> dict[str, Any]:
    """Load `checkpoint` with ``weights_only=True``; return its cleaned state dict."""
    # LAION's checkpoints store numpy scalars beside the tensors; allow exactly those types
    allowed = getattr(torch.serialization, "safe_globals", None)
    guard = allowed(_numpy_safe_globals()) if allowed else contextlib.nullcontext()
    try:
        with guard:
            payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise EmbeddingError(f"{checkpoint} holds more than weights and will not be loaded "
                             f"(weights_only=True refused it): {exc}") from exc
    except (OSError, RuntimeError, EOFError) as exc:
        raise EmbeddingError(f"cannot read CLAP checkpoint {checkpoint}: {exc}") from exc
    return extract_state_dict(payload, source=checkpoint)


def extract_state_dict(payload: Any, *, source: Path | str) -> dict[str, Any]:
    """The model weights of a loaded checkpoint, keys as ``CLAP_Module.model`` names them."""
    state = payload.get("state_dict", payload) if isinstance(payload, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise EmbeddingError(f"{source} holds no CLAP state dict")
    # checkpoints saved from DataParallel prefix every key with "module."
    cleaned = {key.removeprefix("module."): value for key, value in state.items()}
    # a buffer that transformers >= 4.31 no longer has; loading it would fail strictly
    cleaned.pop("text_branch.embeddings.position_ids", None)
    return cleaned


def infer_architecture(state: Mapping[str, Any]) -> tuple[str, bool]:
    """``(amodel, enable_fusion)`` for `CLAP_Module`, read from the weights' shapes.

    The music checkpoints need HTSAT-base, the 630k ones HTSAT-tiny; fusion checkpoints carry
    extra patch-embedding weights. Reading this from the tensors avoids guessing by file name.
    """
    patch = state.get(_PATCH_KEY)
    width = int(patch.shape[0]) if patch is not None else None
    if width not in _HTSAT_BY_WIDTH:
        raise EmbeddingError("checkpoint is not a LAION-CLAP HTSAT model (no "
                             f"{_PATCH_KEY} of width 96, 128 or 256; found {width})")
    return _HTSAT_BY_WIDTH[width], any(key.startswith(_FUSION_PREFIX) for key in state)


def resolve_device(setting: str, *, cuda_available: bool) -> str:
    """``embedding.device`` -> a torch device: "auto" takes the GPU when there is one."""
    if setting == "auto":
        return "cuda" if cuda_available else "cpu"
    if setting == "cuda" and not cuda_available:
        raise EmbeddingError('embedding.device = "cuda" but torch sees no CUDA device; '
                             'use "auto" or "cpu" in config.toml')
    return setting


@contextlib.contextmanager
def _bare_argv() -> Iterator[None]:
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def _numpy_safe_globals() -> list[Any]:
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    dtypes = [getattr(np.dtypes, name) for name in ("Float32DType", "Float64DType", "Int64DType")]
    # pickles written under numpy 1.x name the scalar constructor by its old path
    return [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype, *dtypes]
