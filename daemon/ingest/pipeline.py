"""The ingest pipeline: one kit from the inbox into the library, resumable at any point.

`ingest_kit` is the whole flow in order: claim the kit, list (and safely unpack) it,
journal every file, analyse what is pending in a process pool, settle each result (store,
duplicate or quarantine, each committed), then release the original from the inbox. A
SIGKILL anywhere leaves the journal consistent; running again finishes the work with no
file lost, duplicated or analysed twice once it was settled.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daemon import fsutil
from daemon.config import IngestSettings, Paths
from daemon.errors import IngestError
from daemon.ingest import worker
from daemon.ingest.unpack import KitEntry, UnpackLimits, kit_name, list_kit
from daemon.store import queries
from daemon.store.models import IngestItem, Kit

Progress = Callable[[int, int], None]


@dataclass
class IngestReport:
    """What one `ingest_kit` call achieved (counts include work resumed from a crash)."""

    kit: str
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    junk: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class IngestContext:
    paths: Paths
    settings: IngestSettings


class Analyser:
    """Runs `worker.analyse_file` in a process pool (or in-process for one worker).

    `classifiers` are candidate model files in order of preference; workers use the first
    that exists and reload it when it changes, so retraining needs no pool restart.
    """

    def __init__(self, *, workers: int, rules_dir: Path, classifiers: tuple[Path, ...]) -> None:
        self.workers = max(1, workers or multiprocessing.cpu_count())
        self._init_args = (str(rules_dir), tuple(str(path) for path in classifiers))
        self._pool: ProcessPoolExecutor | None = None
        self._local_ready = False

    def run(self, jobs: list[tuple[str, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield (job index, result) as results complete."""
        if self.workers == 1 or len(jobs) <= 1:
            if not self._local_ready:
                worker.init_worker(*self._init_args, parent_pid=None)
                self._local_ready = True
            for index, job in enumerate(jobs):
                yield index, worker.analyse_file(*job)
            return
        pool = self._ensure_pool()
        futures = {pool.submit(worker.analyse_file, *job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: workers start clean, not forked from the daemon's threads, and are our
            # direct children, so `init_worker` can tie their life to ours (a forkserver
            # and its workers outlived a SIGKILLed parent in measurement).
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                             initializer=worker.init_worker,
                                             initargs=(*self._init_args, os.getpid()))
        return self._pool


def ingest_kit(path: Path, *, context: IngestContext, analyser: Analyser,
               on_progress: Progress | None = None) -> IngestReport:
    """Ingest one top-level inbox entry (folder, zip or loose file).

    Raises `IngestError` when the whole kit is rejected (it is then in the quarantine);
    per-file problems are quarantined and counted, not raised.
    """
    kit = queries.claim_kit(path.name, kit_name(path), source_kind(path))
    listing = _list_or_quarantine(path, kit, context)
    queries.record_items(kit, [entry.rel_path for entry in listing.entries])
    entries = {entry.rel_path: entry for entry in listing.entries}
    pending = queries.pending_items(kit)
    report = IngestReport(kit=kit.name, junk=len(listing.junk), skipped=len(listing.skipped))
    _process(pending, entries, kit, context, analyser, report, on_progress)
    fsutil.remove_entry(context.paths.staging / kit_name(path))
    fsutil.remove_entry(path)
    queries.finish_kit(kit)
    _count_outcomes(kit, report)
    return report


def source_kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    return "zip" if path.suffix.lower() == ".zip" else "file"


def _list_or_quarantine(path: Path, kit: Kit, context: IngestContext):
    limits = UnpackLimits(max_entries=context.settings.max_entries,
                          max_entry_bytes=context.settings.max_entry_bytes,
                          max_total_bytes=context.settings.max_total_bytes,
                          max_ratio=context.settings.max_ratio)
    try:
        return list_kit(path, staging=context.paths.staging, limits=limits)
    except IngestError as exc:
        queries.finish_kit(kit, "quarantined")
        dest = context.paths.quarantine / kit.name / path.name
        fsutil.write_text_atomic(dest.with_name(dest.name + ".reason.txt"), f"{exc}\n")
        fsutil.remove_entry(context.paths.staging / kit_name(path))
        fsutil.move_atomic(path, dest)
        raise


def _process(pending: list[IngestItem], entries: dict[str, KitEntry], kit: Kit,
             context: IngestContext, analyser: Analyser, report: IngestReport,
             on_progress: Progress | None) -> None:
    """Settle every pending item: analyse what needs it, then store or quarantine."""
    jobs, waiting = [], []
    for item in pending:
        entry = entries.get(item.rel_path)
        if entry is None:
            queries.set_state(item, "skipped", reason="vanished before it was ingested")
        elif item.state == "analysed":
            _settle(item, entry, json.loads(item.analysis), kit, context, report)
        elif _is_duplicate(item, entry):
            continue
        else:
            jobs.append((str(entry.source), entry.rel_path))
            waiting.append((item, entry))
    queries.count_attempts([item for item, _ in waiting])
    done = len(pending) - len(jobs)
    if on_progress:
        on_progress(done, len(pending))
    for index, result in analyser.run(jobs):
        item, entry = waiting[index]
        if result["ok"]:
            queries.set_state(item, "analysed", analysis=json.dumps(result))
        _settle(item, entry, result, kit, context, report)
        done += 1
        if on_progress:
            on_progress(done, len(pending))


def _is_duplicate(item: IngestItem, entry: KitEntry) -> bool:
    """Hash the file; record and report True when its content is already a stem."""
    content_hash = fsutil.hash_file(entry.source)
    existing = queries.stem_by_hash(content_hash)
    if existing is None:
        queries.set_state(item, item.state, content_hash=content_hash)
        return False
    queries.set_state(item, "duplicate", content_hash=content_hash, stem=existing.id,
                      reason=f"same content as stem {existing.id}")
    return True


def _settle(item: IngestItem, entry: KitEntry, result: dict[str, Any], kit: Kit,
            context: IngestContext, report: IngestReport) -> None:
    """Store an analysed file, or quarantine a failed one; commit the outcome."""
    if not result["ok"]:
        reason = f"{result['reason']}: {result['detail']}"
        _quarantine_file(entry, kit, context.paths, reason)
        queries.set_state(item, "quarantined", reason=reason)
        report.errors.append(f"{kit.name}/{entry.rel_path}: {reason}")
        return
    content_hash = item.content_hash or fsutil.hash_file(entry.source)
    existing = queries.stem_by_hash(content_hash)
    if existing is not None:  # an identical file settled first in this same run
        queries.set_state(item, "duplicate", stem=existing.id,
                          reason=f"same content as stem {existing.id}")
        return
    stored = Path("stems") / kit.name / entry.rel_path
    fsutil.copy_atomic(entry.source, context.paths.library / stored)
    values = dict(result["values"], stored_path=stored.as_posix(), content_hash=content_hash,
                  embedding=_vector_bytes(result["embedding"]),
                  features=_vector_bytes(result["features"]),
                  embedding_model=result["embedding_model"])
    queries.commit_stem(item, values)


def _quarantine_file(entry: KitEntry, kit: Kit, paths: Paths, reason: str) -> None:
    dest = paths.quarantine / kit.name / entry.rel_path
    fsutil.write_text_atomic(dest.with_name(dest.name + ".reason.txt"),
                            f"{entry.rel_path}: {reason}\n")
    fsutil.copy_atomic(entry.source, dest)


def _vector_bytes(values: list[float]) -> bytes:
    return np.asarray(values, dtype=np.float32).tobytes()


def _count_outcomes(kit: Kit, report: IngestReport) -> None:
    counts = queries.item_states(kit)
    report.stored = counts.get("stored", 0)
    report.duplicates = counts.get("duplicate", 0)
    report.quarantined = counts.get("quarantined", 0)
    report.skipped += counts.get("skipped", 0)
