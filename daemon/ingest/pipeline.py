"""The ingest pipeline: one kit from the inbox into the library, resumable at any point.

`ingest_kit` is the whole flow in order: claim the kit, list (and safely unpack) it,
journal every file, analyse what is pending in a process pool, settle each result (store,
duplicate or quarantine, each committed), weigh the kit's tempo and key evidence together
(`kitpass.settle_kit`), then release the original from the inbox. A
SIGKILL anywhere leaves the journal consistent; running again finishes the work with no
file lost, duplicated or analysed twice once it was settled.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon import fsutil
from daemon.config import IngestSettings, Paths
from daemon.errors import IngestError
from daemon.ingest import worker
from daemon.ingest.analyse import AnalysisResult
from daemon.ingest.kitpass import KitRules, settle_kit
from daemon.ingest.unpack import KitEntry, KitListing, UnpackLimits, kit_name, list_kit
from daemon.ingest.worker import AnalysisFailure
from daemon.store import queries
from daemon.store.records import JournalItem, KitRecord

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
    kit_rules: KitRules  # what the kit pass reads (`kitpass.settle_kit`)


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
        self._lock = threading.Lock()  # the daemon's ingest lane and re-analysis share it

    def run(self, jobs: list[tuple[str, ...]]
            ) -> Iterator[tuple[int, AnalysisResult | AnalysisFailure]]:
        """Yield (job index, result) in job order, as each is ready: stems are then stored,
        and numbered, in the same order on every run (in completion order, the same kits
        made a different library each time, and a seeded render could choose differently).
        A job is (file, path in kit) or, re-analysing a corrected stem, (file, path in kit,
        the user's category)."""
        if self.workers == 1 or len(jobs) <= 1:
            if not self._local_ready:
                worker.init_worker(*self._init_args, parent_pid=None)
                self._local_ready = True
            for index, job in enumerate(jobs):
                yield index, worker.analyse_file(*job)
            return
        pool = self._ensure_pool()
        futures = [pool.submit(worker.analyse_file, *job) for job in jobs]
        for index, future in enumerate(futures):
            yield index, future.result()

    def start(self) -> None:
        """Start the pool's workers now, so they load while the caller lists and hashes a
        kit, not after (spawning them takes about a second)."""
        if self.workers > 1:
            pool = self._ensure_pool()
            for _ in range(self.workers):  # a pool spawns a worker per task it cannot place
                pool.submit(os.getpid)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # spawn: workers start clean, not forked from the daemon's threads, and are
                # our direct children, so `init_worker` can tie their life to ours (a
                # forkserver and its workers outlived a SIGKILLed parent in measurement).
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
    # Before the original leaves the inbox: a kill until then resumes the kit, and this.
    settle_kit(kit.name, library=context.paths.library, rules=context.kit_rules)
    fsutil.remove_entry(context.paths.staging / kit_name(path))
    fsutil.remove_entry(path)
    queries.finish_kit(kit)
    _count_outcomes(kit, report)
    return report


def source_kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    return "zip" if path.suffix.lower() == ".zip" else "file"


def _list_or_quarantine(path: Path, kit: KitRecord, context: IngestContext) -> KitListing:
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
    except OSError:  # a full or read-only library: the kit stays; free what staging took
        fsutil.remove_entry(context.paths.staging / kit_name(path))
        raise


def _process(pending: list[JournalItem], entries: dict[str, KitEntry], kit: KitRecord,
             context: IngestContext, analyser: Analyser, report: IngestReport,
             on_progress: Progress | None) -> None:
    """Settle every pending item: analyse what needs it, then store or quarantine."""
    jobs, waiting = [], []
    for item in pending:
        entry = entries.get(item.rel_path)
        if entry is None:
            queries.set_state(item, "skipped", reason="vanished before it was ingested")
        elif item.analysis is not None:  # analysed before a crash: store, do not analyse
            _store(item, entry, kit, context)
        elif (hashed := _hash_unless_duplicate(item, entry)) is not None:
            jobs.append((str(entry.source), entry.rel_path))
            waiting.append((hashed, entry))
    # Longest first: the pool's last file of a kit is then a short one, not a long loop that
    # one worker analyses while the other waits for the next kit.
    order = sorted(range(len(jobs)), key=lambda i: -_size(waiting[i][1].source))
    jobs, waiting = [jobs[i] for i in order], [waiting[i] for i in order]
    queries.count_attempts([item for item, _ in waiting])
    done = len(pending) - len(jobs)
    if on_progress:
        on_progress(done, len(pending))
    for index, result in analyser.run(jobs):
        item, entry = waiting[index]
        if isinstance(result, AnalysisFailure):
            _quarantine(item, entry, result, kit, context, report)
        else:
            _store(queries.set_state(item, "analysed", analysis=result.to_columns()), entry,
                   kit, context)
        done += 1
        if on_progress:
            on_progress(done, len(pending))


def _size(path: Path) -> int:
    """Bytes of `path` (0 when it cannot be read: its analysis says why)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _hash_unless_duplicate(item: JournalItem, entry: KitEntry) -> JournalItem | None:
    """Hash the file and journal the hash; None (journalled as a duplicate) when its
    content is already a stem."""
    content_hash = fsutil.hash_file(entry.source)
    existing = queries.stem_id_by_hash(content_hash)
    if existing is None:
        return queries.set_state(item, item.state, content_hash=content_hash)
    queries.set_state(item, "duplicate", content_hash=content_hash, stem_id=existing,
                      reason=f"same content as stem {existing}")
    return None


def _store(item: JournalItem, entry: KitEntry, kit: KitRecord,
           context: IngestContext) -> None:
    """Copy an analysed file into the library and commit its stem row (or, when an
    identical file was stored first in this same run, journal it as a duplicate)."""
    content_hash = item.content_hash or fsutil.hash_file(entry.source)
    existing = queries.stem_id_by_hash(content_hash)
    if existing is not None:
        queries.set_state(item, "duplicate", stem_id=existing,
                          reason=f"same content as stem {existing}")
        return
    stored = Path("stems") / kit.name / entry.rel_path
    fsutil.copy_atomic(entry.source, context.paths.library / stored)
    queries.commit_stem(item, item.analysis, stored_path=stored.as_posix(),
                        content_hash=content_hash)


def _quarantine(item: JournalItem, entry: KitEntry, failure: AnalysisFailure,
                kit: KitRecord, context: IngestContext, report: IngestReport) -> None:
    """Keep a copy of a file that cannot be a stem, with the reason beside it."""
    reason = f"{failure.reason}: {failure.detail}"
    dest = context.paths.quarantine / kit.name / entry.rel_path
    fsutil.write_text_atomic(dest.with_name(dest.name + ".reason.txt"),
                             f"{entry.rel_path}: {reason}\n")
    fsutil.copy_atomic(entry.source, dest)
    queries.set_state(item, "quarantined", reason=reason)
    report.errors.append(f"{kit.name}/{entry.rel_path}: {reason}")


def _count_outcomes(kit: KitRecord, report: IngestReport) -> None:
    counts = queries.item_states(kit)
    report.stored = counts.get("stored", 0)
    report.duplicates = counts.get("duplicate", 0)
    report.quarantined = counts.get("quarantined", 0)
    report.skipped += counts.get("skipped", 0)
