"""Benchmark `traum search` ranking on generated data: 100k stems by default.

Reports milliseconds per query (median and 95th percentile) for

- `VectorIndex.nearest` (k=20, the query stem excluded) at the `features-v1` and CLAP
  dimensions, on random unit vectors;
- text ranking over synthetic `StemRecord`s: a prebuilt `TextIndex.rank`, and `rank_text`
  (which tokenises every stem for each query).

Run: ``.venv/bin/python bench/bench_search.py [--stems 100000] [--queries 200]``.
The target is 50 ms per query on 2 cores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from daemon.embed.clap import CLAP_DIM
from daemon.embed.features import FEATURES_DIM
from daemon.embed.index import VectorIndex
from daemon.embed.textsearch import TextIndex, rank_text
from daemon.store.records import StemRecord

CATEGORIES = ("kick", "snare", "clap", "hihat", "perc", "bass", "lead", "pad", "chord", "arp",
              "vocal", "fx", "atmo", "riser")
TAGS = ("dark", "bright", "warm", "driving", "punchy", "airy", "industrial", "deep", "acid",
        "dusty", "wide", "clean", "distorted", "melodic", "minimal")
KIT_WORDS = ("Night", "Drive", "Warehouse", "Techno", "Deep", "House", "Lofi", "Dreams",
             "Acid", "Rave", "Berlin", "Sunset", "Analog", "Modular", "Tools")
TEXT_QUERIES = ("dark pad", "punchy kick", "driving acid bass", "warehouse techno hihat",
                "airy vocal fx", "deep", "Berlin modular arp 128", "clean chord stab")


def time_queries(run: Callable[[int], object], count: int) -> tuple[float, float]:
    """Median and 95th-percentile wall time of `run(i)` in milliseconds."""
    times = []
    for number in range(count):
        start = time.perf_counter()
        run(number)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def bench_vectors(stems: int, dim: int, queries: int) -> str:
    rng = np.random.default_rng(dim)
    vectors = rng.standard_normal((stems, dim)).astype(np.float32)
    start = time.perf_counter()
    index = VectorIndex(dim)
    index.add(np.arange(1, stems + 1), vectors)
    build = time.perf_counter() - start
    picks = rng.integers(1, stems + 1, size=queries)

    def like(number: int) -> object:
        stem_id = int(picks[number])
        return index.nearest(index.vector(stem_id), 20, exclude=[stem_id])

    median, p95 = time_queries(like, queries)
    return (f"nearest  {stems} x {dim:>3}: median {median:6.2f} ms  p95 {p95:6.2f} ms  "
            f"(index built in {build:.2f} s)")


def synthetic_records(count: int, seed: int = 1) -> list[StemRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for stem_id in range(1, count + 1):
        category = CATEGORIES[rng.integers(len(CATEGORIES))]
        tags = tuple(rng.choice(TAGS, size=rng.integers(0, 4), replace=False))
        kit = " ".join(rng.choice(KIT_WORDS, size=2, replace=False))
        tag = tags[0].title() if tags else ""
        bpm = rng.integers(60, 180)
        rel_path = f"{category.title()}s/{tag}{category.title()}_{bpm}_{stem_id}.wav"
        records.append(StemRecord(
            id=stem_id, kit=kit, path=Path("/library") / rel_path, rel_path=rel_path,
            category=category, kind="loop", bpm=128.0, key=None, duration=8.0,
            sample_rate=44100, channels=2, lufs=-14.0, peak_db=-1.0, tags=tags,
            content_hash=f"{stem_id:064x}"))
    return records


def bench_text(stems: int, queries: int) -> list[str]:
    records = synthetic_records(stems)
    start = time.perf_counter()
    index = TextIndex(records)
    build = time.perf_counter() - start
    median, p95 = time_queries(lambda n: index.rank(TEXT_QUERIES[n % len(TEXT_QUERIES)]),
                               queries)
    lines = [f"TextIndex.rank  {stems}: median {median:6.2f} ms  p95 {p95:6.2f} ms  "
             f"(index built in {build:.2f} s)"]
    once = max(3, queries // 40)  # rank_text re-tokenises everything: a few runs suffice
    median, p95 = time_queries(lambda n: rank_text(TEXT_QUERIES[n % len(TEXT_QUERIES)],
                                                   records), once)
    lines.append(f"rank_text       {stems}: median {median:6.2f} ms  p95 {p95:6.2f} ms  "
                 f"({once} runs)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stems", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    for dim in (FEATURES_DIM, CLAP_DIM):
        print(bench_vectors(args.stems, dim, args.queries), flush=True)
    for line in bench_text(args.stems, args.queries):
        print(line, flush=True)


if __name__ == "__main__":
    main()
