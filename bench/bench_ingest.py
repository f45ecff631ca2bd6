"""Ingest throughput on a fresh library: synthesised kits of mixed length, end to end.

The clock starts before the engine exists and stops when the last kit is stored and
profiled, so every one-off step a new user pays is inside it: opening the database, loading
the shipped category classifier, starting the analysis pool, retraining the classifier on
the named stems after each kit, and the kit profiles. Reports audio-seconds ingested per
wall-second (x realtime) and milliseconds per stem, and the CPU seconds the whole process
tree spent (pool workers included; counted once they exit), which a machine shared with
other jobs inflates less than the wall clock.
Run: python bench/bench_ingest.py [--kits 12] [--workers 0] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
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

#: Loop lengths in bars, cycled over the kits: one-bar kits are mostly one-shots by
#: duration, eight-bar kits mostly loops.
BARS = (1, 2, 4, 8)
_KEYS = ("A minor", "F minor", "C major", "D minor", "G major", "E minor")


def write_kits(inbox: Path, kits: int) -> tuple[int, float]:
    """Write `kits` synthesised kits (tempo, key and loop length vary) into `inbox`;
    return how many files and seconds of audio they hold."""
    count, seconds = 0, 0.0
    for index in range(kits):
        samples = synthesize_kit(bpm=100.0 + 7 * (index % 10), key=_KEYS[index % len(_KEYS)],
                                 seed=index, bars=BARS[index % len(BARS)])
        for path in write_kit_folder(samples, inbox / f"Bench Kit {index:03d}"):
            seconds += sf.info(path).duration
            count += 1
    return count, seconds


def _cpu_seconds() -> float:
    """User and system CPU time of this process and its finished children."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kits", type=int, default=12)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "config.toml").write_text(
            f'[paths]\nrules = "{ROOT / "rules"}"\n[ingest]\nworkers = {args.workers}\n')
        config = load_config(root / "config.toml")
        config.paths.inbox.mkdir(parents=True, exist_ok=True)
        count, audio_seconds = write_kits(config.paths.inbox, args.kits)
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        engine = Engine(config)  # a fresh library: empty database, nothing cached
        stored, first_kit = 0, None
        for kit in sorted(config.paths.inbox.iterdir()):
            stored += engine.ingest(kit).stored
            first_kit = first_kit or time.perf_counter() - start
        engine.settle()  # the kit profiles, which are computed beside the next kit
        wall = time.perf_counter() - start
        engine.close()  # the workers exit: their CPU time is counted from here on
        cpu = _cpu_seconds() - cpu_before
    result = {"kits": args.kits, "stems": count, "stored": stored,
              "audio_seconds": round(audio_seconds, 1), "wall_s": round(wall, 2),
              "first_kit_s": round(first_kit, 2), "x_realtime": round(audio_seconds / wall, 1),
              "ms_per_stem": round(1000 * wall / count, 1), "cpu_s": round(cpu, 2),
              "audio_s_per_cpu_s": round(audio_seconds / cpu, 1)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
