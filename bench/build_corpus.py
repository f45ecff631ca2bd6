"""Build the category classifier's shipped training table from real recordings.

    make corpus        # = python bench/build_corpus.py

Renders and decodes every labelled clip of `corpus_sources` (sonic-pi-samples, avldrums,
TimGM6mb, FluidR3, lmms-common, Hydrogen's drum kits, the kit synthesiser), computes its
feature vector (and that of `VARIANTS` augmented copies), fits the classifier on all of it
and writes ``daemon/ingest/data/base_corpus.npz``: features, labels, source, file id and
variant per row, the fitted model and the feature version. Then it rewrites the counts in
``daemon/ingest/data/SOURCES.md``. Needs the Debian packages listed there and fluidsynth;
uses two processes (``--workers``). Deterministic: same packages, same table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_sources import PACKAGES, Job, all_jobs, missing_sources  # noqa: E402

from daemon.ingest.classify import CategoryClassifier  # noqa: E402
from daemon.ingest.corpus import BASE_CORPUS, write_corpus  # noqa: E402
from daemon.ingest.features import prepare  # noqa: E402

#: Augmented copies per clip. Real packs differ from our sources by tape speed, tone and
#: drive; the copy teaches the classifier to look past that. Measured leave-one-source-out:
#: no copy 0.74, one 0.76, three 0.75; adding band limits, rooms and cut tails to the
#: copies scored lower (0.76 against 0.78 without mel spreads).
VARIANTS = 1
_COUNTS_MARK = "<!-- counts: written by bench/build_corpus.py -->"


def augment(audio: np.ndarray, sample_rate: int, *, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``(channels, n)`` `audio` as another pack might have it.

    Played 0.8-1.25x faster (pitch and length together, like a tape), then tilted darker
    (one-pole low-pass) or brighter (first difference), and in 30 % of cases saturated.
    """
    import scipy.signal
    import soxr

    speed = rng.uniform(0.8, 1.25)
    copy = soxr.resample(audio.T, sample_rate, int(sample_rate / speed)).T
    pole = rng.uniform(0.1, 0.6)
    if rng.random() < 0.5:
        copy = scipy.signal.lfilter([1 - pole], [1, -pole], copy, axis=1)
    else:
        copy = scipy.signal.lfilter([1, -pole], [1], copy, axis=1)
    if rng.random() < 0.3:  # tape/console saturation at 2-6x drive
        copy = np.tanh(copy * rng.uniform(2.0, 6.0))
    return np.ascontiguousarray(copy, dtype=np.float32)


def run_job(job: Job) -> list[tuple[str, str, str, int, np.ndarray]]:
    """Rows ``(source, file id, label, variant, vector)`` of one job's clips and copies."""
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(1):
        for clip in job.make():
            rng = np.random.default_rng(list(clip.file_id.encode()))
            versions = [clip.audio] + [augment(clip.audio, clip.sample_rate, rng=rng)
                                       for _ in range(VARIANTS)]
            for variant, audio in enumerate(versions):
                vector = prepare(audio=audio, sample_rate=clip.sample_rate).vector
                rows.append((clip.source, clip.file_id, clip.label, variant, vector))
    return rows


def build(workers: int) -> dict[str, np.ndarray]:
    """Every row of every job, sorted by source, file id and variant."""
    jobs = all_jobs()
    rows = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, result in enumerate(pool.imap_unordered(run_job, jobs), start=1):
            rows.extend(result)
            if done % 25 == 0 or done == len(jobs):
                print(f"{done}/{len(jobs)} jobs, {len(rows)} rows", flush=True)
    rows.sort(key=lambda row: row[:2] + (row[3],))
    rows = _without_duplicates(rows)
    return {"sources": np.array([row[0] for row in rows]),
            "file_ids": np.array([row[1] for row in rows]),
            "categories": np.array([row[2] for row in rows]),
            "variants": np.array([row[3] for row in rows], dtype=np.int8),
            "features": np.stack([row[4] for row in rows]).astype(np.float32)}


def _without_duplicates(rows: list[tuple]) -> list[tuple]:
    """Drop every row of a clip whose recording has the same vector and label as an earlier
    clip of its source (GM kits share many samples): a copy would only double its weight."""
    seen, copies = set(), set()
    for source, file_id, label, variant, vector in rows:
        if variant == 0:
            key = (source, label, vector.tobytes())
            (copies.add((source, file_id)) if key in seen else seen.add(key))
    return [row for row in rows if row[:2] not in copies]


def counts_table(table: dict[str, np.ndarray]) -> str:
    """Markdown table: recordings (variant 0) per category and source."""
    originals = table["variants"] == 0
    pairs = Counter(zip(table["categories"][originals], table["sources"][originals]))
    sources = list(PACKAGES)
    lines = ["| category | " + " | ".join(sources) + " | all |",
             "|---" * (len(sources) + 2) + "|"]
    for category in sorted(set(table["categories"])):
        row = [pairs[(category, source)] for source in sources]
        lines.append(f"| {category} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = [sum(pairs[(c, s)] for c in set(table["categories"])) for s in sources]
    lines.append("| **all** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")
    return "\n".join(lines)


def update_sources_md(path: Path, table: dict[str, np.ndarray], path_size: int) -> None:
    """Replace everything after `_COUNTS_MARK` in SOURCES.md by the current counts."""
    from daemon.fsutil import write_text_atomic

    head = path.read_text(encoding="utf-8").split(_COUNTS_MARK)[0]
    rows, width = table["features"].shape
    write_text_atomic(path, f"{head}{_COUNTS_MARK}\n\n{rows} rows ({VARIANTS} augmented copy "
                      f"per recording), {width} features, {path_size / 1e6:.1f} MB.\n\n"
                      f"{counts_table(table)}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=BASE_CORPUS)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    missing = missing_sources()
    if missing:
        print(f"missing Debian packages: {' '.join(missing)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    table = build(args.workers)
    classifier = CategoryClassifier()
    classifier.fit(table["features"], table["categories"].tolist())
    write_corpus(args.out, classifier, sources=table["sources"], file_ids=table["file_ids"],
                 variants=table["variants"])
    if args.out == BASE_CORPUS:  # a trial build elsewhere leaves the shipped notes alone
        update_sources_md(BASE_CORPUS.with_name("SOURCES.md"), table, args.out.stat().st_size)
    print(counts_table(table))
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.1f} MB, "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
