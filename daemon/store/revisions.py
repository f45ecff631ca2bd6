"""Changes to committed stems after their ingest: the kit's consensus, re-analysis by newer
code, and the user's corrections.

A correction sets a field's value with the source ``"user"`` (`records.CORRECTABLE` lists the
columns each one owns); `update_stems` and `write_reanalysis` then leave those columns as
they are, so no analysis overwrites what the user said. Re-analysis is journalled by the
stems' `analysis_version`: `mark_for_reanalysis` sets it to 0, and each re-analysed stem is
written with the current version in its own transaction, so a killed run resumes with
exactly the stems it had not finished.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from peewee import fn

from daemon.errors import StoreError
from daemon.store.models import Kit, Stem, database
from daemon.store.queries import _to_column, stems_by_ids
from daemon.store.records import CORRECTABLE, StemRecord

#: Columns a re-analysis leaves alone: the search vector may come from another backend
#: (CLAP) that `Engine.catch_up_embeddings` keeps current.
_KEPT_ON_REANALYSIS = frozenset({"embedding", "embedding_model"})


def transaction():
    """A transaction (nested ones are savepoints): several writes that stand or fall
    together, e.g. a stem's re-analysis and its kit's consensus."""
    return database.atomic()


def get_stem(library: Path, stem_id: int) -> StemRecord | None:
    """The stem with this id, or None."""
    return stems_by_ids(library, [stem_id]).get(stem_id)


def update_stems(updates: Mapping[int, Mapping[str, Any]]) -> int:
    """Write analysis column values (column → value) to stems by id, in one transaction,
    leaving every column a user correction owns; return how many stems changed."""
    changed = 0
    with database.atomic():
        for stem_id, columns in updates.items():
            changed += _write(stem_id, columns, Stem.id == stem_id)
    return changed


def write_reanalysis(stem_id: int, columns: Mapping[str, Any], *, version: int) -> bool:
    """Store a re-analysis of a stem still below `version` (its id, files, embedding and
    corrections stay); False when another run already did. The row is written with
    `version` unless `columns` names one."""
    columns = {name: value for name, value in columns.items()
               if name not in _KEPT_ON_REANALYSIS}
    columns.setdefault("analysis_version", version)
    with database.atomic():
        return bool(_write(stem_id, columns, (Stem.id == stem_id)
                           & (Stem.analysis_version < version)))


def mark_for_reanalysis(*, kit: str | None = None) -> int:
    """Set the analysis version of every stem (of one kit) to 0, in one transaction: the
    durable list of what a re-analysis has to visit. Returns how many were marked."""
    query = Stem.update(analysis_version=0)
    if kit is not None:
        query = query.where(Stem.kit.in_(Kit.select(Kit.id).where(Kit.name == kit)))
    with database.atomic():
        return query.execute()


def count_below_version(version: int, *, kit: str | None = None) -> int:
    """How many stems (of one kit) are below `version`: left to re-analyse."""
    query = Stem.select(fn.COUNT(Stem.id)).join(Kit).where(Stem.analysis_version < version)
    if kit is not None:
        query = query.where(Kit.name == kit)
    return query.scalar() or 0


def set_correction(stem_id: int, field: str, value: Any) -> None:
    """Store the user's value of `field` (``category``, ``bpm`` or ``key``), sure and
    trusted, with the source ``"user"``."""
    if field not in CORRECTABLE:
        raise StoreError(f"stem {stem_id}: {field!r} cannot be corrected; "
                         f"choose from {', '.join(CORRECTABLE)}")
    value_column, confidence, source, *rest = CORRECTABLE[field]
    columns = {value_column: value, confidence: 1.0, source: "user"}
    columns.update({name: (True if name == "key_trusted" else "") for name in rest})
    with database.atomic():
        if not Stem.update(**columns).where(Stem.id == stem_id).execute():
            raise StoreError(f"no stem {stem_id} in the library")


def _write(stem_id: int, columns: Mapping[str, Any], where) -> int:
    """Update one stem's columns (minus those a correction owns) where `where` holds."""
    row = Stem.select(Stem.category_source, Stem.bpm_source, Stem.key_source).where(
        Stem.id == stem_id).first()
    if row is None:
        return 0
    owned = {name for field, names in CORRECTABLE.items()
             if getattr(row, f"{field}_source") == "user" for name in names}
    unknown = set(columns) - set(Stem._meta.fields)
    if unknown:
        raise StoreError(f"stem {stem_id}: no stem column for {sorted(unknown)}")
    values = {name: _to_column(value) for name, value in columns.items() if name not in owned}
    if not values:
        return 0
    return Stem.update(**values).where(where).execute()
