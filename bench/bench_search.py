"""Benchmark `traum search` ranking on generated data: 100k stems by default.

Reports milliseconds per query (median and 95th percentile) for

- `VectorIndex.nearest` (k=20, the query stem excluded) at the `features-v1` and CLAP
  dimensions, on random unit vectors;
- text ranking over synthetic `StemRecord`s: a prebuilt `TextIndex.rank`, and `rank_text`
  (which tokenises every stem for each query).

Run: ``.venv/bin/python bench/bench_search.py [--stems 100000] [--queries 200]``.
The target is 50 ms per query on 2 cores.

Instead of those (each mode alone; the issue's figures are for N = 1M):

``--ann N``
    the approximate index (`daemon.embed.ann`) at N stems of clustered vectors
    (`clustered_vectors`: kit-like clusters of uneven size and spread around correlated
    centres, closer to real stems than uniform noise) for each of ``--dims``: exact scan vs
    usearch query (median, p95), build time, file size, and recall@10 of the ANN against the
    exact scan, on a library and queries drawn with a seed never used for tuning.
``--tune N``
    the HNSW parameter sweep on a separate N-stem tuning library (another seed) from which
    the constants in `daemon.embed.ann` were chosen.
``--like-db N``
    `search --like` end to end but for process start (`daemon.vectorsearch.nearest_stems`)
    on a real SQLite library of N stems with a snapshot built by `refresh_vector_index` and
    the longest tail a refresh allows, with and without a category, and its recall@10.
``--similarity N``
    the renderer's similarity criterion (`Scorer.similarity`) over one category's
    candidates of an N-stem library.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from usearch.index import Index

from daemon.config import Paths
from daemon.embed import ann
from daemon.embed.clap import CLAP_DIM
from daemon.embed.features import FEATURES_DIM
from daemon.embed.index import VectorIndex
from daemon.embed.textsearch import TextIndex, rank_text
from daemon.render.scoring import Scorer
from daemon.store.db import open_database
from daemon.store.records import StemRecord
from daemon.vectorsearch import (
    ANN_MIN_STEMS,
    REFRESH_TAIL,
    nearest_stems,
    refresh_vector_index,
)

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


TUNE_SEED, REPORT_SEED = 11, 2024  # the tuning library and the reported one never share a seed
RECALL_K = 10


def clustered_vectors(count: int, dim: int, *, seed: int) -> np.ndarray:
    """`count` unit rows in kit-like clusters: ~400 members on average, sizes uneven
    (lognormal), each with its own spread, around centres drawn from a 16-dimensional
    latent space so that dimensions correlate as audio features do."""
    rng = np.random.default_rng(seed)
    clusters = max(1, count // 400)
    centres = rng.standard_normal((clusters, 16)) @ rng.standard_normal((16, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 1.0, clusters)
    member = rng.choice(clusters, size=count, p=weights / weights.sum())
    spread = rng.uniform(0.2, 0.8, clusters) / np.sqrt(dim)
    rows = np.empty((count, dim), np.float32)
    for start in range(0, count, 100_000):  # chunks: float64 noise for 1M rows is large
        part = member[start:start + 100_000]
        block = centres[part] + spread[part, None] * rng.standard_normal((part.size, dim))
        rows[start:start + part.size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return rows


def exact_top(matrix: np.ndarray, query_rows: np.ndarray, k: int) -> list[set[int]]:
    """The exact top-`k` row numbers of each query row (itself excluded), as sets."""
    found = []
    for row in query_rows:
        scores = matrix @ matrix[row]
        scores[row] = -np.inf
        found.append(set(np.argpartition(-scores, k)[:k].tolist()))
    return found


def ann_top(index: Index, matrix: np.ndarray, row: int, k: int) -> list[int]:
    """The index's top-`k` for stem `row` (ids are row numbers), itself excluded."""
    ids, _ = ann.search_index(index, matrix[row], k + 1)
    return [int(i) for i in ids if i != row][:k]


def recall(index: Index, matrix: np.ndarray, query_rows: np.ndarray,
           truth: list[set[int]]) -> float:
    hits = [len(truth[n] & set(ann_top(index, matrix, int(row), RECALL_K)))
            for n, row in enumerate(query_rows)]
    return float(np.mean(hits)) / RECALL_K


def tune(dim: int, stems: int, queries: int) -> None:
    """Print a Markdown table, row by row (builds are slow): connectivity, expansion_add and
    expansion_search swept on the tuning library."""
    matrix = clustered_vectors(stems, dim, seed=TUNE_SEED + dim)
    rows = np.random.default_rng(TUNE_SEED).choice(stems, size=queries, replace=False)
    truth = exact_top(matrix, rows, RECALL_K)
    print(f"tuning library: {stems} x {dim}, {queries} queries (seed {TUNE_SEED + dim})\n"
          "| connectivity | expansion_add | build s | expansion_search | recall@10 | "
          "median ms |\n|---|---|---|---|---|---|", flush=True)
    for connectivity, expansion_add in ((16, 64), (32, 64), (16, 128)):
        start = time.perf_counter()
        index = ann.build_index(np.arange(stems), matrix, connectivity=connectivity,
                                expansion_add=expansion_add)
        build = time.perf_counter() - start
        for expansion_search in (16, 32, 64, 128):
            index.expansion_search = expansion_search
            found = recall(index, matrix, rows, truth)
            median, _ = time_queries(
                lambda n, index=index: ann.search_index(index, matrix[rows[n]], 11), queries)
            print(f"| {connectivity} | {expansion_add} | {build:.0f} | {expansion_search} | "
                  f"{found:.3f} | {median:.2f} |", flush=True)


def bench_ann(stems: int, dim: int, queries: int) -> str:
    """One Markdown row: exact scan vs the persisted snapshot on the held-out library."""
    matrix = clustered_vectors(stems, dim, seed=REPORT_SEED + dim)
    rows = np.random.default_rng(REPORT_SEED).choice(stems, size=queries, replace=False)
    exact = VectorIndex(dim)
    exact.add(np.arange(stems), matrix)
    exact_median, exact_p95 = time_queries(
        lambda n: exact.nearest(matrix[rows[n]], RECALL_K, exclude=[int(rows[n])]), queries)
    start = time.perf_counter()
    index = ann.build_index(np.arange(stems), matrix)
    build = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        info = ann.write_snapshot(Path(folder), "bench", index, through_id=stems - 1,
                                  anchors={stems - 1: "-"})
        del index
        start = time.perf_counter()
        snapshot = ann.read_snapshot(Path(folder), "bench")
        load_ms = (time.perf_counter() - start) * 1000
        median, p95 = time_queries(lambda n: ann_top(snapshot.index, matrix, int(rows[n]),
                                                     RECALL_K), queries)
        found = recall(snapshot.index, matrix, rows, exact_top(matrix, rows, RECALL_K))
    return (f"| {stems} | {dim} | {exact_median:.2f} / {exact_p95:.2f} | {median:.2f} / "
            f"{p95:.2f} | {build:.0f} | {info.size / 2**20:.0f} | {load_ms:.1f} | "
            f"{found:.3f} |")


def bench_similarity(stems: int, runs: int) -> str:
    """The renderer's similarity criterion for every candidate of one lane: a category's
    share of an N-stem library (the renderer never searches for neighbours; it scores the
    candidates its category, tempo and kit filters left against the stems already chosen,
    here 8)."""
    pool = stems // len(CATEGORIES)
    matrix = clustered_vectors(pool + 8, FEATURES_DIM, seed=REPORT_SEED)
    records = [replace(record, embedding=vector, embedding_model="features-v1")
               for record, vector in zip(synthetic_records(pool + 8), matrix)]
    scorer = Scorer(plan=None, categories=None, extra={})  # type: ignore[arg-type]
    for chosen in records[pool:]:
        scorer.commit(chosen, fit=None)
    candidates = records[:pool]
    median, p95 = time_queries(lambda n: [scorer.similarity(s) for s in candidates],
                               max(3, runs // 20))
    return (f"Scorer.similarity over one lane's {pool} candidates ({stems} stems / "
            f"{len(CATEGORIES)} categories): median {median:.1f} ms  p95 {p95:.1f} ms")


def fill_library(paths: Paths, matrix: np.ndarray, *, start: int = 0) -> None:
    """Stem rows (one kit, random categories) holding `matrix` as features-v1 vectors."""
    db = open_database(paths.database)
    kit = db.execute_sql("INSERT INTO kit (name, source_kind, status, added_at) VALUES "
                         "(?, 'folder', 'complete', 0)", (f"Kit {start}",)).lastrowid
    rng = np.random.default_rng(start)
    with db.atomic():
        db.execute_sql("PRAGMA cache_size = -200000")
        for number, vector in enumerate(matrix, start=start):
            db.execute_sql(
                "INSERT INTO stem (kit_id, rel_path, stored_path, content_hash, category, "
                "category_confidence, category_source, kind, bpm_confidence, bpm_source, "
                "key_confidence, key_source, duration, sample_rate, channels, peak_db, "
                "rms_db, crest_db, tags, embedding, embedding_model, added_at) VALUES "
                "(?, ?, ?, ?, ?, 1, 'name', 'oneshot', 0, 'none', 0, 'none', 0.5, 44100, 2, "
                "-1, -12, 11, '[]', ?, 'features-v1', 0)",
                (kit, f"{number}.wav", f"stems/{number}.wav", f"{number:064x}",
                 CATEGORIES[rng.integers(len(CATEGORIES))], vector.tobytes()))


def bench_like(stems: int, queries: int) -> list[str]:
    """`search --like` as the CLI runs it, minus process start: `nearest_stems` on a real
    SQLite library of `stems` clustered vectors with an ANN snapshot and a tail of
    ``REFRESH_TAIL - 1`` stems added after it (the longest tail before a refresh)."""
    matrix = clustered_vectors(stems + REFRESH_TAIL - 1, FEATURES_DIM, seed=REPORT_SEED + 1)
    lines = []
    with tempfile.TemporaryDirectory() as root:
        paths = Paths(inbox=Path(root) / "inbox", library=Path(root) / "library",
                      requests=Path(root) / "requests", rules=Path(root) / "rules")
        small = ANN_MIN_STEMS - 1  # the largest library searched without an index
        fill_library(paths, matrix[:small])
        median, p95 = time_queries(lambda n: nearest_stems(
            paths, matrix[n], "features-v1", 20, exclude=(n + 1,)), queries)
        lines.append(f"nearest_stems k=20, {small} stems, exact (no index): median "
                     f"{median:.1f} ms  p95 {p95:.1f} ms")
        fill_library(paths, matrix[small:stems], start=small)
        start = time.perf_counter()
        refresh_vector_index(paths, "features-v1")
        lines.append(f"refresh_vector_index, first build from stems.db: "
                     f"{time.perf_counter() - start:.0f} s")
        fill_library(paths, matrix[stems:], start=stems)
        picks = np.random.default_rng(REPORT_SEED).integers(1, stems + 1, size=queries)
        for category in (None, "snare"):
            median, p95 = time_queries(lambda n, c=category: nearest_stems(
                paths, matrix[picks[n] - 1], "features-v1", 20, exclude=(int(picks[n]),),
                category=c), queries)
            lines.append(f"nearest_stems k=20 category={category}: median {median:.1f} ms  "
                         f"p95 {p95:.1f} ms")
        rows = picks[:queries] - 1
        truth = exact_top(matrix, rows, RECALL_K)
        hits = [len(truth[n] & {record.id - 1 for record, _ in nearest_stems(
            paths, matrix[row], "features-v1", RECALL_K, exclude=(int(row) + 1,))})
            for n, row in enumerate(rows)]
        lines.append(f"nearest_stems recall@10 against the exact scan (snapshot + tail): "
                     f"{np.mean(hits) / RECALL_K:.3f}")
    return lines


ANN_HEADER = ("| stems | dim | exact scan median / p95 ms | ANN query median / p95 ms | "
              "build s (1 thread) | file MB | open (view) ms | recall@10 |\n"
              "|---|---|---|---|---|---|---|---|")


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
    parser.add_argument("--ann", type=int, metavar="STEMS", help="bench the ANN at STEMS")
    parser.add_argument("--tune", type=int, metavar="STEMS",
                        help="sweep HNSW parameters on a STEMS-sized tuning library")
    parser.add_argument("--dims", type=int, nargs="+", default=[FEATURES_DIM, CLAP_DIM])
    parser.add_argument("--similarity", type=int, metavar="STEMS",
                        help="time the renderer's similarity criterion at STEMS")
    parser.add_argument("--like-db", type=int, metavar="STEMS",
                        help="time nearest_stems on a SQLite library of STEMS stems")
    args = parser.parse_args()
    if args.like_db:
        print("\n".join(bench_like(args.like_db, args.queries)), flush=True)
        return
    if args.tune or args.ann or args.similarity:
        for dim in args.dims if args.tune else ():
            tune(dim, args.tune, args.queries)
        if args.ann:
            print(ANN_HEADER, flush=True)
        for dim in args.dims if args.ann else ():
            print(bench_ann(args.ann, dim, args.queries), flush=True)
        if args.similarity:
            print(bench_similarity(args.similarity, args.queries), flush=True)
        return
    for dim in (FEATURES_DIM, CLAP_DIM):
        print(bench_vectors(args.stems, dim, args.queries), flush=True)
    for line in bench_text(args.stems, args.queries):
        print(line, flush=True)


if __name__ == "__main__":
    main()
