"""The engine's units of work, shared by the CLI and the daemon: ingest a kit, render a prompt.

`Engine` holds what the work needs between items (the open database, the analysis pool,
loaded rules) and is the `Work` the daemon drives. Every method either succeeds or raises a
`TraumError` whose message names the file and the reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.coalesce import CoalescingJob
from daemon.config import Config, ensure_folders
from daemon.errors import (
    AnalysisError,
    EmbeddingError,
    IngestError,
    RenderError,
    StorageFault,
    TraumError,
)
from daemon.faults import translate_faults
from daemon.folders import (
    read_prompt,
    read_status_file,
)
from daemon.ingest.classify import load_trainer_soon
from daemon.ingest.kitpass import KitRules, load_kit_rules
from daemon.ingest.pipeline import Analyser, IngestContext, IngestReport, Progress, ingest_kit
from daemon.ingest.reconcile import ReconcileReport, reconcile_library
from daemon.kits.refresh import ProfileCache
from daemon.render.outputs.arrangement_png import use_picture_cache
from daemon.status import collect_status
from daemon.store import queries
from daemon.store.db import open_store
from daemon.store.records import StemRecord

if TYPE_CHECKING:
    from daemon.ingest.reanalyse import ReanalysisReport
    from daemon.render.conform import PrunedFile

log = logging.getLogger("traum.work")

#: Kits whose profiles `traum status` lists; a label's library of thousands is summed up in
#: one line instead of read whole for a status (``traum kits`` lists them all).
STATUS_KITS = 50

@dataclass(frozen=True)
class RenderOutcome:
    wav: Path
    report: Path
    plan: Any
    result: Any


class Engine:
    """Ingest and render with one configuration; thread-safe for one ingest lane plus
    render lanes (renders only read committed stems; a cluster worker may run several at
    once, and `in_progress` then names the one started last)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        ensure_folders(config.paths)
        use_picture_cache(config.paths.cache / "matplotlib")
        open_store(config)
        self._analyser: Analyser | None = None
        self._analyser_config: Config | None = None
        self._backend = None
        self._lock = threading.Lock()
        self._analyser_lock = threading.Lock()
        self._profiles = ProfileCache()  # kit profiles read so far, for the next render
        self._profiles_lock = threading.Lock()
        # Beside the next kit's analysis, not between kits: the pool would wait for it.
        self._profiling = CoalescingJob(self._refresh_profiles, name="traum-kit-profiles")
        self.in_progress: dict[str, str] = {}

    # -- the daemon's Work protocol ---------------------------------------------------
    def reconcile(self) -> ReconcileReport:
        report = reconcile_library(self.config.paths)
        log.info("reconciled library: %s", report)
        self.catch_up_embeddings()
        return report

    def ingest(self, path: Path, on_progress: Progress | None = None) -> IngestReport:
        if not path.exists():
            raise IngestError(path, "missing", "no such file or folder")
        self.in_progress["ingest"] = str(path)
        try:
            with translate_faults(self.config.paths, writes=("library",)):
                analyser = self._ensure_analyser()
                analyser.start()
                load_trainer_soon()  # while the pool analyses: the retrain after it needs it
                report = ingest_kit(path, context=self._ingest_context(),
                                    analyser=analyser, on_progress=on_progress)
        finally:
            self.in_progress.pop("ingest", None)
        log.info("ingested %s: %s", path.name, _summary(report))
        try:
            with translate_faults(self.config.paths, writes=("cache", "library")):
                if report.stored:
                    self.learn_categories()
                self.catch_up_embeddings()
        except StorageFault as fault:  # the kit is in: what follows from it catches up later
            log.error("%s is in the library; its classifier and vectors catch up later: %s",
                      path.name, fault)
        self._profiling.request()  # profiled now, not at the next render
        return report

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the kit profiles that ingests asked for are stored; False when
        `timeout` passed first."""
        return self._profiling.wait_idle(timeout)

    def _refresh_profiles(self) -> None:
        try:
            with translate_faults(self.config.paths, writes=("cache", "library")):
                self.kit_summaries()
        except StorageFault as fault:  # derived data: the next read computes them
            log.error("kit profiles catch up at the next read: %s", fault)

    def learn_categories(self) -> int:
        """Retrain the audio category classifier on the shipped corpus plus every stem
        the user named (category from the file name); return how many examples it learnt.

        The workers pick the new model up with their next file.
        """
        import numpy as np

        from daemon.ingest.classify import CategoryClassifier

        blobs, categories = queries.named_stem_features()
        base = CategoryClassifier.load(self._base_classifier())
        width = base.feature_count
        usable = [(np.frombuffer(blob, np.float32), category)
                  for blob, category in zip(blobs, categories) if len(blob) == 4 * width]
        if not usable:
            return 0
        vectors = np.stack([vector for vector, _ in usable])
        learnt = base.with_examples(vectors, [category for _, category in usable])
        learnt.save(self._library_classifier())  # atomic; workers reload it by mtime
        log.info("category classifier learnt from %d named stems", len(usable))
        return len(usable)

    def catch_up_embeddings(self) -> int:
        """Re-embed every stale vector (after a backend switch, or the stems of a new kit
        when the backend is not the one ingest uses); an unusable backend is logged, not
        raised, so it never blocks ingesting. Then the vector index catches up too."""
        done = 0
        try:
            while count := self.reembed():
                done += count
            self.refresh_vector_index()
        except EmbeddingError as exc:
            log.error("embedding backend unavailable, vectors left as they are: %s", exc)
        except TraumError as exc:  # e.g. a stored stem deleted by hand: next time, not now
            log.error("re-embedding or indexing vectors stopped: %s", exc)
        return done

    def refresh_vector_index(self) -> int:
        """Add the vectors of the current model to its ANN snapshot once enough are new
        (`daemon.vectorsearch.refresh_vector_index`); return how many were added."""
        from daemon.vectorsearch import refresh_vector_index

        with translate_faults(self.config.paths, writes=("cache",)):
            return refresh_vector_index(self.config.paths, self._embedding_backend().model_name)

    def render(self, prompt: Path) -> RenderOutcome:
        self.in_progress["render"] = str(prompt)
        try:
            with translate_faults(self.config.paths, writes=("outbox", "cache", "library")):
                text = read_prompt(prompt)
                return self.render_text(text, out_wav=prompt.with_suffix(".wav"))
        finally:
            self.in_progress.pop("render", None)

    def reload(self, config: Config) -> None:
        """Use `config` (and the rules it points at) from the next work item on.

        Called from the signal-handling thread while a lane may be mid-item: nothing in use
        is closed here; the ingest lane rebuilds its analysis pool on its next kit.
        """
        ensure_folders(config.paths)
        open_store(config)
        with self._lock:
            self.config = config
            self._backend = None

    def status(self) -> dict[str, Any]:
        """Library status; work in progress from this engine, or else from a running daemon.
        The kit profiles are listed for a library of up to `STATUS_KITS` kits (``traum kits``
        lists any number)."""
        progress = dict(self.in_progress) or read_status_file(self.config.paths.library)
        status = collect_status(self.config, in_progress=progress)
        listed = status["kits"] <= STATUS_KITS
        return {**status, "kit_profiles": self.kit_summaries() if listed else []}

    def reanalyse(self, *, kit: str | None = None, everything: bool = False,
                  on_progress: Progress | None = None, stopping=lambda: False
                  ) -> ReanalysisReport:
        """Re-analyse stems below the current analysis version (an upgrade's, or left by a
        killed run), after marking `kit` or `everything` (`reanalyse_library`); then the
        classifier learns from the new feature vectors."""
        from daemon.ingest.reanalyse import reanalyse_library

        report = reanalyse_library(self.config.paths.library, analyser=self._ensure_analyser(),
                                   rules=self.kit_rules(), kit=kit, everything=everything,
                                   on_progress=on_progress, stopping=stopping)
        if report.updated:
            self.learn_categories()
        return report

    def close(self) -> None:
        """Finish the kit profiles in progress (within ``daemon.stop_timeout``), then stop
        the analysis pool."""
        self._profiling.close(timeout=self.config.daemon.stop_timeout)
        if self._analyser is not None:
            self._analyser.close()
            self._analyser = None

    # -- building blocks --------------------------------------------------------------
    def plan_text(self, text: str, *, seed: int | None = None, kits=None):
        """Arrange `text` into a plan, choosing a key the library can serve: the keys, as
        heard, of the kit likely to be its backbone, else the library's most common as
        heard."""
        from daemon import profiles
        from daemon.categories import load_categories
        from daemon.compose.arrange import plan_prompt
        from daemon.compose.rules import load_rules

        rules = load_rules(self.config.paths.rules)
        categories = load_categories(self.config.paths.rules)
        kits = self.kit_library() if kits is None else kits
        plan = plan_prompt(text, rules, seed=seed, key_counts=profiles.library_keys(kits))
        kit, counts = profiles.backbone_keys(plan, kits, categories=categories,
                                             config=self.config)
        if not counts:
            return plan
        again = plan_prompt(text, rules, seed=plan.seed, key_counts=counts)
        return replace(again, notes=(*again.notes, f"keys counted in {kit}, the likely "
                                                   "backbone kit, as the renderer hears them"))

    def explain_text(self, text: str, *, seed: int | None = None):
        """Plan `text` and choose its stems as a render would, without rendering; return the
        plan and the selection's explanation (`daemon.render.explain`)."""
        from daemon import profiles
        from daemon.categories import load_categories
        from daemon.render.select import select_stems

        kits = self.kit_library()
        plan = self.plan_text(text, seed=seed, kits=kits)
        categories = load_categories(self.config.paths.rules)
        backbone = profiles.plan_backbone(plan, kits, categories=categories, config=self.config)
        stems = self._candidates(plan, kits, backbone, categories)
        selection = select_stems(plan, stems, settings=self.config.render,
                                 categories=categories, backbone=backbone,
                                 extra_scores=self._text_scores(text, stems),
                                 cache_dir=self.config.paths.cache, kits=kits)
        return plan, selection.explanation

    def kit_library(self):
        """Every kit's profile (`daemon.profiles.kit_library`), read again only where it
        changed since this engine last read it."""
        from daemon import profiles

        with self._profiles_lock:
            return profiles.kit_library(self.config, cache=self._profiles)

    def kit_summaries(self) -> list[dict[str, Any]]:
        """The kit profiles as `traum kits` and `traum status` show them."""
        from daemon import profiles

        with self._profiles_lock:
            return profiles.kit_summaries(self.config, cache=self._profiles)

    def render_text(self, text: str, *, out_wav: Path, seed: int | None = None,
                    exports: Sequence[str] | None = None) -> RenderOutcome:
        """Plan and render `text` to `out_wav`, with the JSON report and the exports beside
        it: `exports`, else those of the prompt's ``export:`` line, else ``render.exports``."""
        from daemon import profiles
        from daemon.categories import load_categories
        from daemon.compose.prompt import read_exports
        from daemon.render.drum_notes import load_drum_notes
        from daemon.render.outputs import write_outputs
        from daemon.render.patterns import load_patterns
        from daemon.render.render import render_plan

        kits = self.kit_library()
        plan = self.plan_text(text, seed=seed, kits=kits)
        categories = load_categories(self.config.paths.rules)
        backbone = profiles.plan_backbone(plan, kits, categories=categories, config=self.config)
        stems = self._candidates(plan, kits, backbone, categories)
        if not stems:
            raise RenderError(f"{out_wav.name}: the library has no stems yet; drop a "
                              f"construction kit into {self.config.paths.inbox} first")
        track = render_plan(plan, stems, settings=self.config.render,
                            cache_dir=self.config.paths.cache,
                            patterns=load_patterns(self.config.paths.rules),
                            drum_notes=load_drum_notes(self.config.paths.rules),
                            categories=categories,
                            extra_scores=self._text_scores(text, stems), kits=kits,
                            backbone=backbone)
        exports = read_exports(text) if exports is None else exports
        result = write_outputs(track, out_wav, exports=self.config.render.exports
                               if exports is None else exports)
        queries.record_render(prompt=text, wav_path=result.wav, seed=plan.seed,
                              lufs=result.lufs, true_peak_db=result.true_peak_db,
                              duration=result.duration)
        self.prune_cache()
        return RenderOutcome(wav=result.wav, report=result.report, plan=plan, result=result)

    def reembed(self, *, limit: int = 64) -> int:
        """Embed up to `limit` stems whose vector is missing or from another backend/model
        (after a backend switch, or from an older database); return how many were done."""
        from daemon.ingest.probe import decode_audio

        backend = self._embedding_backend()
        stems = queries.stems_needing_embedding(self.config.paths.library, backend.model_name,
                                                limit=limit)
        if not stems:
            return 0
        batch = []
        for stem in stems:
            decoded = decode_audio(stem.path)
            batch.append((decoded.audio, decoded.sample_rate))
        for stem, vector in zip(stems, backend.embed_audio(batch)):
            queries.update_embedding(stem.id, vector, backend.model_name)
        log.info("re-embedded %d stems with %s", len(stems), backend.model_name)
        return len(stems)

    def prune_cache(self) -> list[PrunedFile]:
        """Shrink the conform cache to ``render.cache_max_mb``: stale conform versions
        first, then the least recently used; return what was deleted."""
        from daemon.render.conform import prune_cache

        pruned = prune_cache(self.config.paths.cache, self.config.render.cache_max_mb << 20)
        if pruned:
            log.info("conform cache: pruned %d files (%.1f MB)", len(pruned),
                     sum(item.size for item in pruned) / 2**20)
        return pruned

    def _candidates(self, plan, kits, backbone, categories) -> list[StemRecord]:
        """The stems a render of `plan` may choose from whose files are there
        (`daemon.profiles.candidate_stems`)."""
        from daemon import profiles

        return present_stems(profiles.candidate_stems(plan, kits, backbone,
                                                      categories=categories,
                                                      config=self.config))

    def _embedding_backend(self):
        """The configured backend, built once (a CLAP model is slow to load)."""
        from daemon.embed.backend import get_backend

        with self._lock:
            if self._backend is None:
                self._backend = get_backend(self.config.embedding)
        return self._backend

    def _text_scores(self, text: str, stems: Sequence[StemRecord]) -> dict[int, float] | None:
        """Prompt-to-stem similarity from a text-capable backend (CLAP); None otherwise."""
        if self.config.embedding.backend != "clap":
            return None
        backend = self._embedding_backend()
        query = backend.embed_text([text])
        if query is None:
            return None
        vector = query[0]
        return {stem.id: max(0.0, float(stem.embedding @ vector)) for stem in stems
                if stem.embedding is not None and stem.embedding_model == backend.model_name}

    def _ingest_context(self) -> IngestContext:
        return IngestContext(paths=self.config.paths, settings=self.config.ingest,
                             kit_rules=self.kit_rules())

    def kit_rules(self) -> KitRules:
        """What the kit pass weighs evidence with: category traits and the tempo range of
        every genre word (the composer's rules, read here for the ingest)."""
        from daemon.compose.rules import load_rules

        genres = load_rules(self.config.paths.rules).genres.values()
        return load_kit_rules(self.config.paths.rules, {word: (genre.bpm_min, genre.bpm_max)
                              for genre in genres for word in (genre.name, *genre.synonyms)})

    def _ensure_analyser(self) -> Analyser:
        # The ingest lane and the background re-analysis both ask for the pool: one builds it.
        with self._analyser_lock:
            if self._analyser is not None and self._analyser_config is not self.config:
                self._analyser.close()  # config or rules were reloaded since it started
                self._analyser = None
            if self._analyser is None:
                from daemon.ingest.rules import load_analysis_rules

                # Validate here, in the main process, so a bad rules/ folder is a RuleError
                # naming the file rather than a broken worker pool.
                load_analysis_rules(self.config.paths.rules)
                self._relearn_if_stale()
                self._analyser_config = self.config
                self._analyser = Analyser(workers=self.config.ingest.workers,
                                          rules_dir=self.config.paths.rules,
                                          classifiers=(self._library_classifier(),
                                                       self._base_classifier()))
            return self._analyser

    def _relearn_if_stale(self) -> None:
        """A library classifier learnt on top of another release's corpus learns again on
        this one's (or is dropped when no stem is named), so an upgrade's corpus serves the
        next file, not the next named kit."""
        from daemon.ingest.classify import CategoryClassifier

        learnt = self._library_classifier()
        if not learnt.exists():
            return
        try:
            current = CategoryClassifier.load(learnt).learnt_on(
                CategoryClassifier.load(self._base_classifier()))
        except AnalysisError:  # unreadable, or another feature version: learn it again
            current = False
        if current:
            return
        log.info("%s was learnt on another release's corpus: learning again", learnt.name)
        try:
            with translate_faults(self.config.paths, writes=("cache", "library")):
                if self.learn_categories() == 0:
                    learnt.unlink(missing_ok=True)
        except StorageFault as fault:  # the old classifier still reads stems, a little worse
            log.error("the category classifier learns again after the next kit: %s", fault)

    def classifier_path(self) -> Path:
        """The classifier the workers use: the one that learnt from the library's named
        stems if there is one, else the one shipped with the package (no training)."""
        learnt = self._library_classifier()
        return learnt if learnt.exists() else self._base_classifier()

    def _base_classifier(self) -> Path:
        from daemon.ingest.corpus import BASE_CORPUS

        return BASE_CORPUS

    def _library_classifier(self) -> Path:
        from daemon.ingest.classify import CLASSIFIER_FILE

        return self.config.paths.cache / CLASSIFIER_FILE.replace("classifier", "classifier_library")


def present_stems(stems: Sequence[StemRecord]) -> list[StemRecord]:
    """`stems` without those whose file was deleted by hand, each logged with what to do."""
    present = []
    for stem in stems:
        if stem.path.exists():
            present.append(stem)
        else:
            log.warning("%s: stored stem deleted by hand, left out of renders; run traum "
                        "doctor --fix so the library forgets it", stem.path)
    return present


def _summary(report: IngestReport) -> str:
    return (f"{report.stored} stored, {report.duplicates} duplicates, "
            f"{report.quarantined} quarantined, {report.junk} junk skipped")
