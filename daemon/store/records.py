"""Plain records the store hands to the rest of the engine (no peewee objects leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StemRecord:
    """One committed stem in the library, as the renderer and the CLI see it.

    `path` is the absolute path of the stored file; `rel_path` is its path relative to
    the kit's root as dropped. `bpm` is None for one-shots, `key` None for drums and
    noise; keys are canonical (``"F# minor"``).
    """

    id: int
    kit: str
    path: Path
    rel_path: str
    category: str
    kind: str  # "loop" or "oneshot"
    bpm: float | None
    key: str | None
    duration: float
    sample_rate: int
    channels: int
    lufs: float | None
    peak_db: float
    tags: tuple[str, ...]
    content_hash: str
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)
    embedding_model: str | None = None
    bpm_confidence: float = 0.0
    key_confidence: float = 0.0
    category_confidence: float = 0.0
