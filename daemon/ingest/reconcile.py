"""Start-up reconciliation of the library with its journal after a crash or kill."""

from __future__ import annotations

from dataclasses import dataclass

from daemon import fsutil
from daemon.config import Paths
from daemon.store import queries


@dataclass
class ReconcileReport:
    temp_files: int = 0
    orphans: int = 0
    kits_finished: int = 0
    kits_to_resume: int = 0


def reconcile_library(paths: Paths) -> ReconcileReport:
    """Make disk and journal agree; report what was repaired.

    - temp files (interrupted copies) are deleted;
    - unfinished kits whose original is still in the inbox are left for the startup scan
      to resume; those whose original is gone are closed (a pending item there can no
      longer be read, so it is marked skipped with the reason);
    - stored files that no committed stem references, outside kits still ingesting, are
      deleted: they are copies whose commit never happened.
    """
    report = ReconcileReport(temp_files=fsutil.remove_temp_files(paths.library))
    resuming = set()
    for kit in queries.unfinished_kits():
        if (paths.inbox / (kit.source_name or kit.name)).exists():
            resuming.add(kit.name)
            continue
        for item in queries.pending_items(kit):
            queries.set_state(item, "skipped", reason="original left the inbox before ingest")
        queries.finish_kit(kit)
        report.kits_finished += 1
    report.kits_to_resume = len(resuming)
    report.orphans = _remove_orphans(paths, resuming)
    return report


def _remove_orphans(paths: Paths, resuming: set[str]) -> int:
    committed = queries.stored_paths()
    removed = 0
    if not paths.stems.is_dir():
        return 0
    for stored in paths.stems.rglob("*"):
        relative = stored.relative_to(paths.library)
        if not stored.is_file() or relative.parts[1] in resuming:
            continue
        if relative.as_posix() not in committed:
            stored.unlink()
            removed += 1
    return removed

