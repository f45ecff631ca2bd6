"""Ingest throughput: a generated corpus of >= 200 stems through the real pipeline.

Reports audio-seconds analysed per wall-second (x realtime) and milliseconds per stem,
cold (including pool start-up and the one-off classifier training) and for the analysis
itself. Run: python bench/bench_ingest.py [--stems 200] [--workers 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.config import load_config  # noqa: E402
from daemon.synth.kit import synthesize_kit, write_kit_folder  # noqa: E402
from daemon.work import Engine  # noqa: E402


def build_corpus(inbox: Path, stems: int) -> tuple[int, float]:
    """Write kits of synthesised stems until `stems` files exist; return count and seconds."""
    count, seconds, seed = 0, 0.0, 0
    keys = ("A minor", "F minor", "C major", "D minor", "G major", "E minor")
    while count < stems:
        samples = synthesize_kit(bpm=120.0 + 4 * (seed % 10), key=keys[seed % len(keys)],
                                 seed=seed, bars=4)
        samples = samples[: stems - count]
        for path in write_kit_folder(samples, inbox / f"Bench Kit {seed:03d}"):
            seconds += sf.info(path).duration
        count += len(samples)
        seed += 1
    return count, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stems", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(
            f'[paths]\nrules = "{ROOT / "rules"}"\n[ingest]\nworkers = {args.workers}\n')
        config = load_config(root / "config.toml")
        engine = Engine(config)
        count, audio_seconds = build_corpus(config.paths.inbox, args.stems)
        start = time.perf_counter()
        engine.classifier_path()  # one-off per library; reported separately
        trained = time.perf_counter()
        stored = 0
        for kit in sorted(config.paths.inbox.iterdir()):
            stored += engine.ingest(kit).stored
        done = time.perf_counter()
        engine.close()
    wall = done - trained
    result = {"stems": count, "stored": stored, "audio_seconds": round(audio_seconds, 1),
              "classifier_training_s": round(trained - start, 2),
              "ingest_wall_s": round(wall, 2),
              "x_realtime": round(audio_seconds / wall, 1),
              "ms_per_stem": round(1000 * wall / count, 1)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
