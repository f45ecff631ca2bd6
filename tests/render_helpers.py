"""Helpers for the renderer tests: library records from synthesised kits, plans, settings."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from daemon.compose.plan import Plan, Section, StemQuery
from daemon.config import RenderSettings
from daemon.render.master import integrated_loudness
from daemon.store.records import StemRecord
from daemon.synth import KitSample, write_kit_folder


def kit_records(samples: list[KitSample], folder: Path, *, kit: str = "TE Test Kit",
                first_id: int = 1) -> list[StemRecord]:
    """Write `samples` under `folder` and describe them as the library would (ground truth
    for category, kind, tempo, key and tags; measured loudness and peak)."""
    paths = write_kit_folder(samples, folder)
    records = []
    for number, (sample, path) in enumerate(zip(samples, paths), start=first_id):
        audio = sample.audio
        # One-shots shorter than a 400 ms loudness block are measured padded with silence.
        padded = np.pad(audio, ((0, 0), (0, max(0, int(0.4 * sample.sample_rate) + 1
                                                 - audio.shape[1]))))
        lufs = integrated_loudness(padded, sample.sample_rate)
        records.append(StemRecord(
            id=number, kit=kit, path=path, rel_path=sample.name, category=sample.category,
            kind=sample.kind, bpm=sample.bpm, key=sample.key,
            duration=audio.shape[1] / sample.sample_rate, sample_rate=sample.sample_rate,
            channels=2, lufs=float(lufs) if np.isfinite(lufs) else None,
            peak_db=float(20 * np.log10(np.abs(audio).max())), tags=sample.tags,
            content_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
            category_confidence=1.0))
    return records


def fake_record(number: int, category: str, *, kind: str = "oneshot", bpm: float | None = None,
                key: str | None = None, tags: tuple[str, ...] = (), kit: str = "Kit A",
                lufs: float | None = -14.0, peak_db: float = -1.0, duration: float = 1.0,
                embedding: np.ndarray | None = None) -> StemRecord:
    """A library record whose file is never read (selection tests)."""
    return StemRecord(id=number, kit=kit, path=Path(f"/nonexistent/{number}.wav"),
                      rel_path=f"{category}_{number}.wav", category=category, kind=kind,
                      bpm=bpm, key=key, duration=duration, sample_rate=44100, channels=2,
                      lufs=lufs, peak_db=peak_db, tags=tags, content_hash=f"hash{number}",
                      embedding=embedding, embedding_model="test" if embedding is not None
                      else None, category_confidence=1.0)


def settings(**changes) -> RenderSettings:
    """Default render settings (as config.toml's defaults), with `changes`."""
    base = RenderSettings(sample_rate=44100, bit_depth=24, target_lufs=-14.0, true_peak_db=-1.0,
                          max_stretch=0.25, max_semitones=3, sidechain=True,
                          exports=("wav", "json"), cache_max_mb=2048)
    return replace(base, **changes)


def techno_plan(*, bpm: float = 132.0, key: str = "A minor", seed: int = 7,
                extra: tuple[StemQuery, ...] = ()) -> Plan:
    """A short five-section techno arrangement (24 bars) whose energy rises into a drop."""
    q = StemQuery
    return Plan(
        prompt="dark driving techno", genre="techno", bpm=bpm, key=key, seed=seed,
        moods=("dark", "driving"),
        structure=(
            Section("Intro", 4, 0.3, (q("atmo", ("dark",)), q("hihat", ("closed",)))),
            Section("Build", 4, 0.6, (q("kick", ("punchy",)), q("hihat", ("closed",)),
                                      q("bass", ("rolling",)), q("fx", ("riser",)))),
            Section("Drop", 8, 1.0, (q("kick", ("punchy",)), q("clap"),
                                     q("hihat", ("closed",), count=2), q("bass", ("rolling",)),
                                     q("arp"), q("pad", ("dark",)), *extra)),
            Section("Break", 4, 0.45, (q("pad", ("dark",)), q("atmo", ("dark",)))),
            Section("Outro", 4, 0.15, (q("atmo", ("dark",)),)),
        ))


def click_ratio(audio: np.ndarray, position: int, *, half: int = 256) -> float:
    """Largest sample step within 2 samples of `position`, relative to the 90th percentile of
    steps in the surrounding ±`half` samples: smooth audio scores about 1, a click far more."""
    steps = np.abs(np.diff(audio, axis=1)).max(axis=0)
    position = min(position, steps.size)
    jump = steps[max(0, position - 2):position + 2].max(initial=0.0)
    around = np.r_[steps[max(0, position - half):max(0, position - 2)],
                   steps[position + 2:position + half]]
    return float(jump / (np.percentile(around, 90) + 1e-5)) if around.size else 0.0
