"""The analysis step that runs in pool processes: decode → analyse → embed, no I/O else.

Workers load the analysis rules and the category classifier once (`init_worker`) and then
turn one file into an `AnalysisResult`. Errors come back as data (`AnalysisFailure`) so
the pipeline, the one boundary per file, decides about quarantine.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from daemon.embed.features import FEATURES_MODEL, embed_features
from daemon.errors import AnalysisError, IngestError, TraumError
from daemon.ingest.analyse import AnalysisResult, analyse_stem
from daemon.ingest.classify import CategoryClassifier
from daemon.ingest.probe import decode_audio
from daemon.ingest.rules import load_analysis_rules

_STATE: dict[str, Any] = {}
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def init_worker(rules_dir: str, classifiers: tuple[str, ...],
                parent_pid: int | None = None) -> None:
    """Load the rules into this process and remember where the classifier lives:
    `classifiers` in order of preference (the first that exists is used, and reloaded
    when its file changes). As a pool initializer, `parent_pid` (the pool owner) ties the
    worker's life to its parent's."""
    # One BLAS thread per worker: the pool already uses every core, and oversubscribed
    # BLAS threads made feature extraction 3-5x slower in measurement.
    threadpool_limits(1)
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    _STATE["rules"] = load_analysis_rules(Path(rules_dir))
    _STATE["classifiers"] = tuple(Path(path) for path in classifiers)
    _STATE["loaded"] = None


def _classifier() -> CategoryClassifier:
    """The preferred classifier, reloaded when the engine has retrained it (new mtime)."""
    path = next((p for p in _STATE["classifiers"] if p.exists()), _STATE["classifiers"][-1])
    stamp = (path, path.stat().st_mtime_ns)
    if _STATE["loaded"] != stamp:
        _STATE["classifier"] = CategoryClassifier.load(path)
        _STATE["loaded"] = stamp
    return _STATE["classifier"]


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (e.g. the daemon got SIGKILL),
    so no orphaned analysis processes linger; elsewhere this is a no-op."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before we asked: no signal comes
            os._exit(1)


@dataclass(frozen=True)
class AnalysisFailure:
    """Why a file cannot become a stem: a short `reason` word and the `detail`."""

    reason: str
    detail: str


def analyse_file(source: str, rel_path: str,
                 category: str | None = None) -> AnalysisResult | AnalysisFailure:
    """Analyse one file into its `AnalysisResult` (with the search vector), or say why not;
    `category` is the user's correction, when re-analysing a corrected stem.

    Only `TraumError`s become failures; anything else is a bug and propagates.
    """
    path = Path(source)
    try:
        decoded = decode_audio(path)
        analysis = analyse_stem(decoded.audio, decoded.sample_rate, name=rel_path,
                                rules=_STATE["rules"], classifier=_classifier(),
                                category=category)
        vector = embed_features(y=decoded.audio, sample_rate=decoded.sample_rate)
    except IngestError as exc:
        return AnalysisFailure(exc.reason, exc.detail or str(exc))
    except AnalysisError as exc:
        return AnalysisFailure(str(exc).split(":")[0] or "analysis", str(exc))
    except TraumError as exc:
        return AnalysisFailure("analysis", str(exc))
    return replace(analysis, embedding=np.asarray(vector, np.float32),
                   embedding_model=FEATURES_MODEL)
