"""Re-analysis: stored stems analysed again by the current code and rules, resumably.

The work list is durable: every stem below `ANALYSIS_VERSION` (an upgrade's stems, or those
`store.revisions.mark_for_reanalysis` marked for a request). Each stem is analysed from its
stored file in the analysis pool and written back in its own transaction with the current
version, keeping its id, files, embedding and the user's corrections (a corrected category
is the one it is analysed as); the last stem of a kit also settles the kit's consensus
(`kitpass.settle_kit`) in that same transaction. A kill at any moment leaves every stem
either done once or still on the list, and the next run (or daemon start) finishes exactly
the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from daemon.ingest.analyse import ANALYSIS_VERSION, AnalysisResult
from daemon.ingest.kitpass import KitRules, settle_kit
from daemon.ingest.pipeline import Analyser, Progress
from daemon.ingest.worker import AnalysisFailure
from daemon.store import queries, revisions
from daemon.store.records import StemRecord

log = logging.getLogger("traum.reanalyse")


@dataclass
class ReanalysisReport:
    """What one `reanalyse_library` call did. `resumed`: it finished an earlier run's (or
    an upgrade's) work list instead of marking the requested stems; `failed` lists stems
    whose file could not be analysed (kept as they were); `remaining` is what is left."""

    marked: int = 0
    updated: int = 0
    kits_settled: int = 0
    resumed: bool = False
    failed: list[str] = field(default_factory=list)
    remaining: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def reanalyse_library(library: Path, *, analyser: Analyser, rules: KitRules,
                      kit: str | None = None, everything: bool = False,
                      on_progress: Progress | None = None,
                      stopping: Callable[[], bool] = lambda: False) -> ReanalysisReport:
    """Re-analyse what is below the current analysis version, after marking `kit` (or with
    `everything`, the whole library) when none of it is still waiting from an earlier run.

    `stopping` is asked between stems; when it says yes the run ends early, resumable.
    """
    report = ReanalysisReport()
    if kit is not None or everything:
        if revisions.count_below_version(ANALYSIS_VERSION, kit=kit):
            report.resumed = True  # finish the interrupted run first; it covers this one
        else:
            report.marked = revisions.mark_for_reanalysis(kit=kit)
    stems = sorted(queries.stems_below_analysis_version(library, ANALYSIS_VERSION),
                   key=lambda stem: (stem.kit, stem.id))
    if stems:
        log.info("re-analysing %d stems (analysis version %d)", len(stems), ANALYSIS_VERSION)
    if on_progress:
        on_progress(0, len(stems))
    jobs = [(str(stem.path), stem.rel_path, stem.category if "category" in stem.overrides
             else None) for stem in stems]
    for done, (index, result) in enumerate(analyser.run(jobs), start=1):
        _write_back(stems[index], result, library=library, rules=rules, report=report)
        if on_progress:
            on_progress(done, len(stems))
        if stopping():
            break
    report.remaining = revisions.count_below_version(ANALYSIS_VERSION)
    return report


def _write_back(stem: StemRecord, result: AnalysisResult | AnalysisFailure, *,
                library: Path, rules: KitRules, report: ReanalysisReport) -> None:
    """Store one stem's new analysis (a failure keeps the old one, with the new version so
    it is not tried forever) and, after its kit's last stem, the kit's consensus."""
    columns = {} if isinstance(result, AnalysisFailure) else result.to_columns()
    with revisions.transaction():
        if not revisions.write_reanalysis(stem.id, columns, version=ANALYSIS_VERSION):
            return  # another run (the daemon's, a second CLI) wrote it first
        if revisions.count_below_version(ANALYSIS_VERSION, kit=stem.kit) == 0:
            settle_kit(stem.kit, library=library, rules=rules)
            report.kits_settled += 1
    if isinstance(result, AnalysisFailure):
        report.failed.append(f"{stem.kit}/{stem.rel_path}: {result.reason}: {result.detail}")
        log.error("re-analysis of stem %d kept its old analysis: %s: %s", stem.id,
                  result.reason, result.detail)
    else:
        report.updated += 1
