"""Kits stored through the real ingest pipeline, for the kit profile tests: an engine on a
fresh library, synthesised kits whose names may claim another key than they play, and a store
that returns the stored stems' ids in the order of the samples (profiles left to compute)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from daemon.config import load_config
from daemon.ingest.pipeline import ingest_kit
from daemon.store import queries
from daemon.synth import KitSample, key_token, synthesize_kit, write_kit_folder
from daemon.work import Engine

ROOT = Path(__file__).resolve().parents[1]


def make_engine(tmp_path: Path) -> Engine:
    """An engine on ``tmp_path/library`` with the shipped rules and one analysis worker;
    its config is ``tmp_path/config.toml``."""
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n[ingest]\nworkers = 1\n')
    return Engine(load_config(config))


def kit_samples(bpm: float, key: str, seed: int, *, claimed_key: str | None = None,
                names: str = "descriptive") -> list[KitSample]:
    """A synthesised kit (2-bar loops) playing `key`; with `claimed_key`, its file names
    say that key instead (wrong labels, as real packs have)."""
    samples = synthesize_kit(bpm=bpm, key=key, seed=seed, names=names, bars=2)
    if claimed_key is None:
        return samples
    return [replace(sample, name=sample.name.replace(f"_{key_token(key)}",
                                                     f"_{key_token(claimed_key)}"))
            for sample in samples]


def store_kit(engine: Engine, name: str, samples: list[KitSample], *,
              claimed_key: str | None = None) -> list[int]:
    """Ingest `samples` as the kit `name`; return the stem ids in the order of `samples`.
    With `claimed_key`, check that the library took the names' key for every keyful loop."""
    folder = engine.config.paths.inbox / name
    write_kit_folder(samples, folder)
    # The pipeline alone: the engine's ingest would also profile the kit at once.
    ingest_kit(folder, context=engine._ingest_context(), analyser=engine._ensure_analyser())
    stored = {stem.rel_path: stem for stem in
              queries.list_stems(engine.config.paths.library, kit=name)}
    if claimed_key is not None:
        labelled = [stored[sample.name].key for sample in samples if sample.key]
        assert labelled and set(labelled) == {claimed_key}, labelled
    return [stored[sample.name].id for sample in samples]
