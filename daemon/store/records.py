"""Plain records the store hands to the rest of the engine (no peewee objects leak out).

`StemRecord` is the one description of a stem row's analysis columns: the peewee model adds
a column for each of its fields (see `models.py`) and the queries fill each field
from the column of the same name (`COLUMN_NAMES` lists the few that differ).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Record fields whose stem column has another name.
COLUMN_NAMES = {"key": "musical_key"}
#: Record fields that are not stem columns: the row id, the kit's name (from the kit
#: table) and the absolute path (the column holds it relative to the library).
NOT_COLUMNS = frozenset({"id", "kit", "path"})


#: What a user can correct (``traum fix``) → the stem columns the correction owns. Once the
#: field's ``*_source`` is ``"user"``, no analysis writes any of them again.
CORRECTABLE = {
    "category": ("category", "category_confidence", "category_source"),
    "bpm": ("bpm", "bpm_confidence", "bpm_source", "bpm_reason"),
    "key": ("musical_key", "key_confidence", "key_source", "key_trusted", "key_reason"),
}


def column_name(record_field: str) -> str:
    """The stem column that holds a `StemRecord` field."""
    return COLUMN_NAMES.get(record_field, record_field)


@dataclass(frozen=True)
class StemRecord:
    """One committed stem in the library, as the renderer and the CLI see it.

    `path` is the absolute path of the stored file; `rel_path` is its path relative to
    the kit's root as dropped. `bpm` is None for one-shots, `key` None for drums and
    noise; keys are canonical (``"F# minor"``). Each ``*_source`` says where a value came
    from (``"filename"``, ``"length"``, ``"audio"``, ``"category"``: its category's default,
    ``"kit"``: the kit's consensus, ``"user"``: a correction no analysis overwrites,
    ``"none"``); ``*_reason`` says why a tempo or key is uncertain, and `key_trusted` is
    False for keys to check by ear. A `kind_source` of ``"kit"`` marks a loop the kit pass
    made of a stem its own analysis took for a one-shot.
    `pulse_bpm`, `pulse_confidence`, `pulse_kicks` and `chroma` are the audio evidence the
    kit consensus weighs. `analysis_version` is the ingest's ``ANALYSIS_VERSION`` when the stem was
    analysed (0: before versions existed, or marked for re-analysis).
    Fields with defaults may be left out by records built by hand (tests, benchmarks).
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
    bpm_source: str = "none"
    key_source: str = "none"
    category_source: str = "none"
    rms_db: float = 0.0
    crest_db: float = 0.0
    descriptors: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)
    features: np.ndarray | None = field(default=None, compare=False, repr=False)
    analysis_version: int = 0
    pulse_bpm: float | None = None
    pulse_confidence: float = 0.0
    pulse_kicks: bool = False
    chroma: np.ndarray | None = field(default=None, compare=False, repr=False)
    bpm_reason: str = ""
    key_trusted: bool = False
    key_reason: str = ""
    kind_source: str = "none"

    @property
    def overrides(self) -> tuple[str, ...]:
        """The fields the user corrected (`CORRECTABLE` names), in that order."""
        return tuple(name for name in CORRECTABLE if getattr(self, f"{name}_source") == "user")


@dataclass(frozen=True)
class KitRecord:
    """One dropped kit. `status`: ``ingesting``, ``complete`` or ``quarantined``;
    `source_name` is the inbox entry it came from (None in databases from release 1);
    `revision` changes whenever one of its stems is added, removed or relabelled."""

    id: int
    name: str
    source_name: str | None
    source_kind: str
    status: str
    revision: int = 0


@dataclass(frozen=True)
class JournalItem:
    """One file of a kit in the ingest journal, as of the last committed transition.

    `analysis` holds the stem's column values while the item is ``analysed`` (so a crash
    before it is stored does not analyse it again), else None.
    """

    id: int
    kit_id: int
    rel_path: str
    state: str
    reason: str = ""
    content_hash: str | None = None
    stem_id: int | None = None
    attempts: int = 0
    analysis: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
