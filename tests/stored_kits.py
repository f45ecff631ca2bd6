"""Libraries of several synthesised kits for the backbone, harmony, role and render tests.

`store_kit` writes a kit into an engine's library as the ingest would leave it (files under
``stems/``, one committed row per sample) without running the ingest, with the ground truth as
labels unless told to lie: `claimed_key` replaces the key of every tonal loop (and its file
name's key token), as a pack whose names state a wrong key. Descriptors and feature vectors are
the ingest's own analysis of the audio, so the role checks and the kits' sound see what they
would see in use.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf

from daemon.config import load_config
from daemon.ingest.analyse import measure_levels
from daemon.ingest.features import prepare
from daemon.store import queries
from daemon.synth import KitSample, synthesize_kit
from daemon.synth.fx import synth_crackle
from daemon.synth.kit import key_token
from daemon.work import Engine

ROOT = Path(__file__).resolve().parents[1]
NOISE_HAT = "Drums/HiHats/TE_HiHat_Dusty_03.wav"


def make_engine(root: Path, *, rules: Path = ROOT / "rules") -> Engine:
    """An engine on an empty library under `root`, with the repository's rules."""
    (root / "config.toml").write_text(f'[paths]\nrules = "{rules}"\n')
    return Engine(load_config(root / "config.toml"))


@cache
def kit_samples(bpm: float, key: str, seed: int, names: str = "descriptive",
                claimed_key: str | None = None, noise_hat: bool = False) -> tuple[KitSample, ...]:
    """A two-bar synthesised kit; file names claim `claimed_key` when given; with
    `noise_hat`, a vinyl-crackle bed named like a hi-hat joins it."""
    samples = synthesize_kit(bpm=bpm, key=key, seed=seed, names=names, bars=2)
    if claimed_key:
        true, claimed = key_token(key), key_token(claimed_key)
        samples = [replace(s, name=s.name.replace(f"_{true}.", f"_{claimed}.")) for s in samples]
    if noise_hat:
        crackle = synth_crackle(sample_rate=44100, seconds=4.0, seed=seed)
        samples.append(KitSample(name=NOISE_HAT, audio=crackle, sample_rate=44100,
                                 category="atmo", kind="oneshot", bpm=None, key=None,
                                 tags=("noise",)))
    return tuple(samples)


def store_kit(engine: Engine, name: str, samples: tuple[KitSample, ...], *,
              claimed_key: str | None = None) -> list[int]:
    """Commit `samples` as the complete kit `name`; return the stem ids. Categories come
    from the truth, except that a sample filed under ``HiHats`` is a hi-hat (as its name
    says); tonal loops carry `claimed_key` instead of their true key when given."""
    library = engine.config.paths.library
    kit = queries.claim_kit(name, name, "folder")
    queries.record_items(kit, [sample.name for sample in samples])
    items = {item.rel_path: item for item in queries.pending_items(kit)}
    ids = []
    for sample in samples:
        stored = Path("stems") / name / sample.name
        (library / stored).parent.mkdir(parents=True, exist_ok=True)
        sf.write(library / stored, sample.audio.T, sample.sample_rate)
        content = hashlib.sha256((library / stored).read_bytes()).hexdigest()
        ids.append(queries.commit_stem(items[sample.name], _columns(sample, claimed_key),
                                       stored_path=stored.as_posix(), content_hash=content))
    queries.finish_kit(kit)
    return ids


def _columns(sample: KitSample, claimed_key: str | None) -> dict:
    analysis = prepare(audio=np.asarray(sample.audio), sample_rate=sample.sample_rate)
    levels = measure_levels(audio=sample.audio, sample_rate=sample.sample_rate)
    category = "hihat" if "/HiHats/" in f"/{sample.name}" else sample.category
    key = claimed_key if sample.key and claimed_key else sample.key
    return dict(
        category=category, category_confidence=0.95, category_source="filename",
        kind=sample.kind, bpm=sample.bpm, bpm_confidence=1.0 if sample.bpm else 0.0,
        bpm_source="filename" if sample.bpm else "none", musical_key=key,
        key_confidence=0.95 if key else 0.0, key_source="filename" if key else "none",
        duration=sample.audio.shape[1] / sample.sample_rate, sample_rate=sample.sample_rate,
        channels=2, lufs=levels["lufs"], peak_db=levels["peak_db"], rms_db=levels["rms_db"],
        crest_db=levels["crest_db"], tags=sample.tags, descriptors=analysis.descriptors,
        features=analysis.vector, embedding=None, embedding_model=None, analysis_version=1)
