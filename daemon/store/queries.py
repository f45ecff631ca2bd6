"""Every query against the library database. Nothing else in the engine touches peewee.

Rows leave this module as records (`StemRecord`, `KitRecord`, `JournalItem`) or plain
values, never as models. Column encodings live here: tags and descriptors as JSON, vectors
as float32 blobs. The journal functions commit each state change in its own transaction,
so a crash at any moment leaves a consistent journal.
"""

from __future__ import annotations

import base64
import json
import time
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from peewee import fn

from daemon.errors import StoreError
from daemon.store.models import (
    PENDING_STATES,
    IngestItem,
    Kit,
    KitProfileRow,
    Render,
    Stem,
    database,
)
from daemon.store.records import NOT_COLUMNS, JournalItem, KitRecord, StemRecord, column_name

# --- stems ----------------------------------------------------------------------------

_HINTS = typing.get_type_hints(StemRecord)


IN_CHUNK = 500  # values per IN (...) list, below every database's parameter limit


def in_chunks(values: Sequence) -> Iterator[Sequence]:
    """`values` in slices of `IN_CHUNK`, one IN (...) list each."""
    for start in range(0, len(values), IN_CHUNK):
        yield values[start:start + IN_CHUNK]


_RECORD_COLUMNS = tuple(item.name for item in fields(StemRecord)
                        if item.name not in NOT_COLUMNS)


def _select_stems():
    """A query of stems with their kit's name, read as plain rows by `_stem_records` (a
    model instance per row cost more than the rest of a render's read of its candidates)."""
    return Stem.select(Stem.id, Kit.name, Stem.stored_path,
                       *(getattr(Stem, column_name(name)) for name in _RECORD_COLUMNS)
                       ).join(Kit)


def _stem_records(query, library: Path) -> Iterator[StemRecord]:
    """The rows of a `_select_stems` query as `StemRecord`s with absolute paths under
    `library`; every other field comes from the column of the same name."""
    for stem_id, kit, stored_path, *values in query.tuples():
        yield StemRecord(id=stem_id, kit=kit, path=library / stored_path,
                         **{name: _from_column(_HINTS[name], value)
                            for name, value in zip(_RECORD_COLUMNS, values, strict=True)})


def _from_column(hint: Any, value: Any) -> Any:
    """A stored value as the record holds it: JSON text → tuple or dict, blob → float32."""
    if value is None:
        return None
    if isinstance(value, (bytes, memoryview)):
        return np.frombuffer(value, dtype=np.float32)
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(json.loads(value))
    return json.loads(value) if origin is Mapping else value


def _to_column(value: Any) -> Any:
    """A value as its column stores it: arrays as float32 bytes, sequences and mappings as
    JSON (descriptors rounded to 6 decimals, far below their meaning), numpy scalars as
    Python numbers. Stored values pass through unchanged."""
    if isinstance(value, np.ndarray):
        return np.asarray(value, dtype=np.float32).tobytes()
    if isinstance(value, (tuple, list)):
        return json.dumps(list(value))
    if isinstance(value, Mapping):
        return json.dumps({key: round(float(v), 6) for key, v in value.items()})
    return value.item() if isinstance(value, np.generic) else value


def list_stems(library: Path, *, category: str | None = None, kit: str | None = None,
               after: int = 0, limit: int | None = None) -> list[StemRecord]:
    """Every committed stem (optionally of one category or kit), ordered by id; a page of
    them with `limit`: the first `limit` stems whose id is above `after` (keyset paging,
    as fast on the last page as on the first: the index on (category, id) finds it)."""
    query = _select_stems().order_by(Stem.id)
    if category:
        query = query.where(Stem.category == category)
    if kit:
        query = query.where(Kit.name == kit)
    if after:
        query = query.where(Stem.id > after)
    if limit is not None:
        query = query.limit(limit)
    return list(_stem_records(query, library))


def kit_stems(library: Path, kits: Sequence[str], *,
              categories: Sequence[str] | None = None) -> list[StemRecord]:
    """The stems of the named `kits` (of `categories` only, if given), ordered by id: the
    candidates of a track, which draws on a backbone kit and at most two more
    (`daemon.render.select.MAX_KITS`). Served by the index on (kit_id, category)."""
    found = []
    for names in in_chunks(list(kits)):
        query = _select_stems().where(Kit.name.in_(names))
        if categories is not None:
            query = query.where(Stem.category.in_(list(categories)))
        found.extend(_stem_records(query, library))
    return sorted(found, key=lambda stem: stem.id)


def stems_below_analysis_version(library: Path, version: int) -> list[StemRecord]:
    """Stems analysed by code older than `version` (the ingest's ``ANALYSIS_VERSION``),
    ordered by id: what a re-analysis has to visit."""
    query = (_select_stems().where(Stem.analysis_version < version)
             .order_by(Stem.id))
    return list(_stem_records(query, library))


def stem_id_by_hash(content_hash: str) -> int | None:
    """The id of the stem with this content, or None."""
    # The id alone: building the SQL for every column of a stem cost 1.4 ms a file.
    return Stem.select(Stem.id).where(Stem.content_hash == content_hash).scalar()


def stems_needing_embedding(library: Path, model_name: str, *,
                            limit: int = 256) -> list[StemRecord]:
    """Stems whose vector is missing or was made by another backend or model."""
    query = (_select_stems()
             .where(Stem.embedding_model.is_null() | (Stem.embedding_model != model_name))
             .order_by(Stem.id).limit(limit))
    return list(_stem_records(query, library))


def named_stem_features() -> tuple[list[bytes], list[str]]:
    """Classifier vectors and categories of stems whose category came from their name or
    from the user's correction: the user's own labelled examples for the classifier."""
    query = (Stem.select(Stem.features, Stem.category)
             .where(Stem.category_source.in_(("filename", "user"))
                    & Stem.features.is_null(False))
             .order_by(Stem.id))
    rows = list(query)
    return [bytes(row.features) for row in rows], [row.category for row in rows]


def update_embedding(stem_id: int, vector: np.ndarray, model_name: str) -> None:
    with database.atomic():
        (Stem.update(embedding=_to_column(np.asarray(vector)), embedding_model=model_name)
         .where(Stem.id == stem_id).execute())


# --- kits and the journal -------------------------------------------------------------


def claim_kit(source_name: str, name: str, source_kind: str) -> KitRecord:
    """Return the kit to ingest the inbox entry `source_name` into.

    An unfinished kit from the same entry is resumed; a finished kit is never reopened,
    so a new drop with a used name becomes "name (2)", "name (3)"... and loses nothing.
    """
    with database.atomic():
        resumed = Kit.get_or_none((Kit.source_name == source_name) & (Kit.status == "ingesting"))
        if resumed is not None:
            return _kit_record(resumed)
        candidate, number = name, 1
        while Kit.get_or_none(Kit.name == candidate) is not None:
            number += 1
            candidate = f"{name} ({number})"
        return _kit_record(Kit.create(name=candidate, source_name=source_name,
                                      source_kind=source_kind, status="ingesting",
                                      added_at=time.time()))


def finish_kit(kit: KitRecord, status: str = "complete") -> None:
    with database.atomic():
        Kit.update(status=status, finished_at=time.time()).where(Kit.id == kit.id).execute()


def unfinished_kits() -> list[KitRecord]:
    return [_kit_record(kit) for kit in
            Kit.select().where(Kit.status == "ingesting").order_by(Kit.id)]


def complete_kits() -> list[KitRecord]:
    """Every kit whose ingest finished, ordered by id (read as plain rows: a render reads
    them all to find the stale profiles, 20,000 at a label's scale)."""
    query = (Kit.select(Kit.id, Kit.name, Kit.source_name, Kit.source_kind, Kit.status,
                        Kit.revision)
             .where(Kit.status == "complete").order_by(Kit.id).tuples())
    return [KitRecord(*row) for row in query]


def kit_profiles(kit_ids: Iterable[int]) -> dict[int, tuple[str, dict[str, Any]]]:
    """Kit id → (stamp, profile) of the stored profiles of `kit_ids` (absent ones are left
    out)."""
    found = {}
    for wanted in in_chunks([int(i) for i in kit_ids]):
        query = KitProfileRow.select().where(KitProfileRow.kit.in_(wanted))
        found.update((row.kit_id, (row.rules_hash, json.loads(row.profile))) for row in query)
    return found


def save_kit_profile(kit_id: int, stamp: str, profile: Mapping[str, Any]) -> None:
    """Store (or replace) the profile of a kit with the `stamp` of what it was computed from
    (the rules and the kit's stem labels)."""
    with database.atomic():
        (KitProfileRow.insert(kit=kit_id, rules_hash=stamp, profile=json.dumps(profile),
                              computed_at=time.time())
         .on_conflict(conflict_target=[KitProfileRow.kit],
                      preserve=[KitProfileRow.rules_hash, KitProfileRow.profile,
                                KitProfileRow.computed_at])
         .execute())


def _kit_record(kit: Kit) -> KitRecord:
    return KitRecord(id=kit.id, name=kit.name, source_name=kit.source_name,
                     source_kind=kit.source_kind, status=kit.status, revision=kit.revision)


def record_items(kit: KitRecord, rel_paths: Iterable[str]) -> None:
    """Journal every file of a kit as `discovered`, keeping rows that already exist."""
    now = time.time()
    rows = [{"kit": kit.id, "rel_path": rel, "state": "discovered", "updated_at": now}
            for rel in rel_paths]
    # One transaction per chunk: on PostgreSQL every row bumps the same journal counter row
    # (migration v9), whose versions pile up until commit. A kill between chunks is harmless:
    # the next attempt lists the kit again and journals what is missing.
    for start in range(0, len(rows), 500):
        with database.atomic():
            IngestItem.insert_many(rows[start:start + 500]).on_conflict_ignore().execute()


def pending_items(kit: KitRecord) -> list[JournalItem]:
    query = (IngestItem.select()
             .where((IngestItem.kit == kit.id) & IngestItem.state.in_(PENDING_STATES))
             .order_by(IngestItem.rel_path))
    return [_journal_item(item) for item in query]


def _journal_item(item: IngestItem) -> JournalItem:
    return JournalItem(id=item.id, kit_id=item.kit_id, rel_path=item.rel_path,
                       state=item.state, reason=item.reason, content_hash=item.content_hash,
                       stem_id=item.stem_id, attempts=item.attempts,
                       analysis=_read_analysis(item.analysis))


def set_state(item: JournalItem, state: str, *, reason: str | None = None,
              content_hash: str | None = None, stem_id: int | None = None,
              analysis: Mapping[str, Any] | None = None) -> JournalItem:
    """Commit a journal transition of `item`, with whichever of the other values are given;
    return the item as committed. `analysis` is the stem's column values, kept until the
    item is stored."""
    cached = None if analysis is None else _write_analysis(analysis)
    changes = {"reason": reason, "content_hash": content_hash, "stem": stem_id,
               "analysis": cached}
    changes = {name: value for name, value in changes.items() if value is not None}
    with database.atomic():
        (IngestItem.update(state=state, updated_at=time.time(), **changes)
         .where(IngestItem.id == item.id).execute())
    return replace(item, state=state, reason=item.reason if reason is None else reason,
                   content_hash=item.content_hash if content_hash is None else content_hash,
                   stem_id=item.stem_id if stem_id is None else stem_id,
                   analysis=item.analysis if cached is None else _read_analysis(cached))


def _write_analysis(columns: Mapping[str, Any]) -> str:
    """JSON of stem column values; blobs as base64."""
    stored = {name: _to_column(value) for name, value in columns.items()}
    return json.dumps({name: {"base64": base64.b64encode(value).decode("ascii")}
                       if isinstance(value, bytes) else value
                       for name, value in stored.items()})


def _read_analysis(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    return {name: base64.b64decode(value["base64"]) if isinstance(value, dict) else value
            for name, value in json.loads(text).items()}


def count_attempts(items: Sequence[JournalItem]) -> None:
    """Commit one more analysis attempt for each item, before its analysis starts."""
    ids = [item.id for item in items]
    with database.atomic():
        for start in range(0, len(ids), 500):
            (IngestItem.update(attempts=IngestItem.attempts + 1)
             .where(IngestItem.id.in_(ids[start:start + 500])).execute())


def commit_stem(item: JournalItem, columns: Mapping[str, Any], *, stored_path: str,
                content_hash: str) -> int:
    """Insert the stem row of `item` (its analysis `columns`, the library-relative
    `stored_path` and the content hash) and mark the item `stored`, in one transaction;
    return the stem's id.

    Raises `StoreError` when a column is unknown: an analysis field the record lacks.
    """
    unknown = set(columns) - set(Stem._meta.fields)
    if unknown:
        raise StoreError(f"{item.rel_path}: no stem column for {sorted(unknown)}; add the "
                         "field to StemRecord and a migration")
    values = {name: _to_column(value) for name, value in columns.items()}
    with database.atomic():
        stem = Stem.create(**values, kit=item.kit_id, rel_path=item.rel_path,
                           stored_path=stored_path, content_hash=content_hash,
                           added_at=time.time())
        IngestItem.update(state="stored", stem=stem.id, updated_at=time.time(),
                          content_hash=content_hash, analysis=None,
                          reason="").where(IngestItem.id == item.id).execute()
    return stem.id


def item_states(kit: KitRecord) -> dict[str, int]:
    """Journal state counts of one kit."""
    query = (IngestItem.select(IngestItem.state, fn.COUNT(IngestItem.id).alias("n"))
             .where(IngestItem.kit == kit.id).group_by(IngestItem.state))
    return {row.state: row.n for row in query}


def stored_paths() -> set[str]:
    """Library-relative paths of every committed stem (for reconciling files on disk)."""
    return {row.stored_path for row in Stem.select(Stem.stored_path)}


# --- status ---------------------------------------------------------------------------


def library_stats() -> dict[str, Any]:
    """Counts for `traum status`: stems, kits, stems by category, journal states, renders.

    Read from the counts the database keeps exact with triggers (schema v9), so this costs
    the same at a million stems as at ten; a count that fell to 0 is left out, as a
    category without stems is."""
    counts: dict[str, dict[str, int]] = {"stem": {}, "journal": {}, "kit": {}, "render": {}}
    rows = database.execute_sql("SELECT topic, name, n FROM stat_count WHERE n <> 0")
    for topic, name, n in rows:
        counts[topic][name] = int(n)
    by_category, kits = counts["stem"], counts["kit"]
    return {"stems": sum(by_category.values()), "kits": sum(kits.values()),
            "kits_by_status": dict(sorted(kits.items())),
            "by_category": dict(sorted(by_category.items())),
            "journal": dict(sorted(counts["journal"].items())),
            "renders": counts["render"].get("", 0)}


def last_errors(limit: int = 10) -> list[dict[str, Any]]:
    """The most recent quarantined files with their reasons."""
    query = (IngestItem.select(IngestItem, Kit).join(Kit)
             .where(IngestItem.state == "quarantined")
             .order_by(IngestItem.updated_at.desc()).limit(limit))
    return [{"kit": item.kit.name, "file": item.rel_path, "reason": item.reason,
             "at": item.updated_at} for item in query]


def record_render(*, prompt: str, wav_path: Path, seed: int, lufs: float,
                  true_peak_db: float, duration: float) -> None:
    with database.atomic():
        Render.create(prompt=prompt, wav_path=str(wav_path), seed=seed, lufs=lufs,
                      true_peak_db=true_peak_db, duration=duration, created_at=time.time())


# --- vector search (daemon/vectorsearch.py) ---------------------------------------------


def stems_by_ids(library: Path, ids: Iterable[int]) -> dict[int, StemRecord]:
    """The committed stems among `ids`, by id (absent ids are left out)."""
    found = {}
    for wanted in in_chunks([int(i) for i in ids]):
        query = _select_stems().where(Stem.id.in_(wanted))
        found.update((stem.id, stem) for stem in _stem_records(query, library))
    return found
