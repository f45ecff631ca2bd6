"""Every query against the library database. Nothing else in the engine touches peewee.

Rows leave this module as plain `StemRecord`s; the journal functions commit each state
change in its own transaction so a crash at any moment leaves a consistent journal.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from peewee import fn

from daemon.compose.plan import parse_key
from daemon.store.models import (
    PENDING_STATES,
    IngestItem,
    Kit,
    Render,
    Stem,
    database,
)
from daemon.store.records import StemRecord

# --- stems ----------------------------------------------------------------------------


def to_record(stem: Stem, library: Path) -> StemRecord:
    """Convert a row to a `StemRecord` with an absolute path under `library`."""
    vector = np.frombuffer(stem.embedding, dtype=np.float32) if stem.embedding else None
    return StemRecord(
        id=stem.id, kit=stem.kit.name, path=library / stem.stored_path, rel_path=stem.rel_path,
        category=stem.category, kind=stem.kind, bpm=stem.bpm, key=stem.musical_key,
        duration=stem.duration, sample_rate=stem.sample_rate, channels=stem.channels,
        lufs=stem.lufs, peak_db=stem.peak_db, tags=tuple(json.loads(stem.tags)),
        content_hash=stem.content_hash, embedding=vector, embedding_model=stem.embedding_model,
        bpm_confidence=stem.bpm_confidence, key_confidence=stem.key_confidence,
        category_confidence=stem.category_confidence,
    )


def list_stems(library: Path, *, category: str | None = None,
               kit: str | None = None) -> list[StemRecord]:
    """Every committed stem (optionally of one category or kit), ordered by id."""
    query = Stem.select(Stem, Kit).join(Kit).order_by(Stem.id)
    if category:
        query = query.where(Stem.category == category)
    if kit:
        query = query.where(Kit.name == kit)
    return [to_record(stem, library) for stem in query]


def stem_details(stem_id: int) -> dict[str, Any] | None:
    """Sources of each analysis value and the descriptors, for `traum stems --json`."""
    stem = Stem.get_or_none(Stem.id == stem_id)
    if stem is None:
        return None
    return {"bpm_source": stem.bpm_source, "key_source": stem.key_source,
            "category_source": stem.category_source, "rms_db": stem.rms_db,
            "crest_db": stem.crest_db, "descriptors": json.loads(stem.descriptors)}


def search_stems(library: Path, *, category: str | None = None, tags: Sequence[str] = (),
                 bpm: float | None = None, key: str | None = None,
                 limit: int = 20) -> list[tuple[StemRecord, float]]:
    """Stems ranked by fit: tag overlap, tempo closeness (half/double time count), key
    compatibility (same key, relative key, then distance on the circle of fifths).

    A `category` filters; the other criteria only rank. Scores are in 0..1, ties by id.
    """
    scored = []
    for record in list_stems(library, category=category):
        parts = [_tag_score(record.tags, tags)] if tags else []
        if bpm:
            parts.append(_tempo_score(record.bpm, bpm))
        if key:
            parts.append(_key_score(record.key, key))
        scored.append((record, sum(parts) / len(parts) if parts else 1.0))
    scored.sort(key=lambda pair: (-pair[1], pair[0].id))
    return scored[:limit]


def _tag_score(have: Iterable[str], want: Iterable[str]) -> float:
    want = set(want)
    return len(want & set(have)) / len(want) if want else 1.0


def _tempo_score(stem_bpm: float | None, bpm: float) -> float:
    if stem_bpm is None:
        return 0.5  # one-shots fit any tempo, but less specifically than a matching loop
    ratio = min(abs(stem_bpm * factor / bpm - 1.0) for factor in (0.5, 1.0, 2.0))
    return max(0.0, 1.0 - ratio / 0.25)  # 25% stretch scores zero


def _key_score(stem_key: str | None, key: str) -> float:
    if stem_key is None:
        return 0.5  # drums and noise sit in any key
    tonic, mode = parse_key(stem_key)
    want_tonic, want_mode = parse_key(key)
    if (tonic, mode) == (want_tonic, want_mode):
        return 1.0
    relative = (tonic + (3 if mode == "minor" else -3)) % 12
    if mode != want_mode and relative == want_tonic:
        return 0.9
    fifths = min((7 * (tonic - want_tonic)) % 12, (7 * (want_tonic - tonic)) % 12)
    return max(0.0, 0.8 - 0.15 * fifths)


def key_counts(categories: Iterable[str]) -> dict[str, int]:
    """Number of stems per canonical key among `categories` (for choosing a plan key)."""
    query = (Stem.select(Stem.musical_key, fn.COUNT(Stem.id).alias("n"))
             .where(Stem.category.in_(list(categories)) & Stem.musical_key.is_null(False))
             .group_by(Stem.musical_key))
    return {row.musical_key: row.n for row in query}


def stem_by_hash(content_hash: str) -> Stem | None:
    return Stem.get_or_none(Stem.content_hash == content_hash)


def stems_needing_embedding(model_name: str, *, limit: int = 256) -> list[Stem]:
    """Stems whose vector is missing or was made by another backend or model."""
    query = (Stem.select(Stem, Kit).join(Kit)
             .where(Stem.embedding_model.is_null() | (Stem.embedding_model != model_name))
             .order_by(Stem.id).limit(limit))
    return list(query)


def named_stem_features() -> tuple[list[bytes], list[str]]:
    """Classifier vectors and categories of stems whose category came from their name:
    the user's own labelled examples for the audio category classifier."""
    query = (Stem.select(Stem.features, Stem.category)
             .where((Stem.category_source == "filename") & Stem.features.is_null(False))
             .order_by(Stem.id))
    rows = list(query)
    return [bytes(row.features) for row in rows], [row.category for row in rows]


def update_embedding(stem_id: int, vector: np.ndarray, model_name: str) -> None:
    with database.atomic():
        (Stem.update(embedding=np.asarray(vector, np.float32).tobytes(),
                     embedding_model=model_name)
         .where(Stem.id == stem_id).execute())


# --- kits and the journal -------------------------------------------------------------


def claim_kit(source_name: str, name: str, source_kind: str) -> Kit:
    """Return the kit to ingest the inbox entry `source_name` into.

    An unfinished kit from the same entry is resumed; a finished kit is never reopened,
    so a new drop with a used name becomes "name (2)", "name (3)"... and loses nothing.
    """
    with database.atomic():
        resumed = Kit.get_or_none((Kit.source_name == source_name) & (Kit.status == "ingesting"))
        if resumed is not None:
            return resumed
        candidate, number = name, 1
        while Kit.get_or_none(Kit.name == candidate) is not None:
            number += 1
            candidate = f"{name} ({number})"
        return Kit.create(name=candidate, source_name=source_name, source_kind=source_kind,
                          status="ingesting", added_at=time.time())


def finish_kit(kit: Kit, status: str = "complete") -> None:
    with database.atomic():
        Kit.update(status=status, finished_at=time.time()).where(Kit.id == kit.id).execute()


def record_items(kit: Kit, rel_paths: Iterable[str]) -> None:
    """Journal every file of a kit as `discovered`, keeping rows that already exist."""
    now = time.time()
    rows = [{"kit": kit.id, "rel_path": rel, "state": "discovered", "updated_at": now}
            for rel in rel_paths]
    with database.atomic():
        for start in range(0, len(rows), 500):
            IngestItem.insert_many(rows[start:start + 500]).on_conflict_ignore().execute()


def pending_items(kit: Kit) -> list[IngestItem]:
    return list(IngestItem.select()
                .where((IngestItem.kit == kit) & IngestItem.state.in_(PENDING_STATES))
                .order_by(IngestItem.rel_path))


def set_state(item: IngestItem, state: str, **fields: Any) -> None:
    """Commit a journal transition of `item` (plus any extra column values)."""
    fields.update(state=state, updated_at=time.time())
    with database.atomic():
        IngestItem.update(**fields).where(IngestItem.id == item.id).execute()
    for name, value in fields.items():
        setattr(item, name, value)


def count_attempts(items: Sequence[IngestItem]) -> None:
    """Commit one more analysis attempt for each item, before its analysis starts."""
    ids = [item.id for item in items]
    with database.atomic():
        for start in range(0, len(ids), 500):
            (IngestItem.update(attempts=IngestItem.attempts + 1)
             .where(IngestItem.id.in_(ids[start:start + 500])).execute())


def commit_stem(item: IngestItem, values: Mapping[str, Any]) -> Stem:
    """Insert the stem row and mark its journal item `stored` in one transaction."""
    with database.atomic():
        stem = Stem.create(kit=item.kit_id, added_at=time.time(), **values)
        IngestItem.update(state="stored", stem=stem.id, updated_at=time.time(),
                          content_hash=values["content_hash"], analysis=None,
                          reason="").where(IngestItem.id == item.id).execute()
    return stem


def item_states(kit: Kit) -> dict[str, int]:
    """Journal state counts of one kit."""
    query = (IngestItem.select(IngestItem.state, fn.COUNT(IngestItem.id).alias("n"))
             .where(IngestItem.kit == kit).group_by(IngestItem.state))
    return {row.state: row.n for row in query}


def stored_paths() -> set[str]:
    """Library-relative paths of every committed stem (for reconciling files on disk)."""
    return {row.stored_path for row in Stem.select(Stem.stored_path)}


def unfinished_kits() -> list[Kit]:
    return list(Kit.select().where(Kit.status == "ingesting").order_by(Kit.id))


# --- status ---------------------------------------------------------------------------


def library_stats() -> dict[str, Any]:
    """Counts for `traum status`: stems, kits, stems by category, journal states."""
    by_category = Counter({row.category: row.n for row in Stem.select(
        Stem.category, fn.COUNT(Stem.id).alias("n")).group_by(Stem.category)})
    states = {row.state: row.n for row in IngestItem.select(
        IngestItem.state, fn.COUNT(IngestItem.id).alias("n")).group_by(IngestItem.state)}
    kits = {row.status: row.n for row in Kit.select(
        Kit.status, fn.COUNT(Kit.id).alias("n")).group_by(Kit.status)}
    return {"stems": sum(by_category.values()), "kits": sum(kits.values()),
            "kits_by_status": kits, "by_category": dict(sorted(by_category.items())),
            "journal": states, "renders": Render.select().count()}


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
