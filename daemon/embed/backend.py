"""Choosing the embedding backend, and deciding which stored vectors are stale.

Every stored vector carries the `model_name` of the backend that made it (``features-v1``,
``clap:630k-audioset-best.pt``...). Vectors of different models live in different spaces
and must never be compared, so after a backend switch the lead's background job re-embeds
every stem for which `needs_reembedding` is true, and `daemon.vectorsearch` searches each
model's vectors apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from daemon.config import EmbeddingSettings
from daemon.embed.clap import ClapBackend
from daemon.embed.features import FeaturesBackend
from daemon.errors import EmbeddingError


class EmbeddingBackend(Protocol):
    """Turns stems (and, if it can, text) into unit vectors of one fixed size."""

    model_name: str
    dim: int

    def embed_audio(self, batch: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
        """``(samples, sample_rate)`` pairs -> ``(n, dim)`` float32 rows of unit norm."""
        ...

    def embed_text(self, texts: Sequence[str]) -> np.ndarray | None:
        """Texts -> ``(n, dim)`` unit rows in the audio space, or None if unsupported."""
        ...


def get_backend(settings: EmbeddingSettings) -> EmbeddingBackend:
    """The backend named by ``embedding.backend``.

    Raises
    ------
    EmbeddingError
        The CLAP backend is chosen but its package or checkpoint is missing; the message
        says what to install or configure.
    """
    if settings.backend == "features":
        return FeaturesBackend()
    if settings.backend == "clap":
        return ClapBackend(checkpoint=settings.clap_checkpoint, batch_size=settings.batch_size,
                           device=settings.device)
    raise EmbeddingError(f'unknown embedding.backend "{settings.backend}" in config.toml; '
                         'use "features" or "clap"')


def needs_reembedding(record_model: str | None, backend: EmbeddingBackend) -> bool:
    """True when a stem's stored vector is missing or was made by another model."""
    return record_model != backend.model_name
