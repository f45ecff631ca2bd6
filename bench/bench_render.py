"""Renderer speed and memory: ``python bench/bench_render.py [--json]``.

Synthesises the test kit (128 BPM, A minor), then renders in fresh subprocesses:

- a 3-minute track (100 bars at 132 BPM, so every loop is stretched) with an empty cache
  ("cold") and again with the cache filled ("warm");
- a 12-minute track (400 bars), reporting the process's peak resident memory.

Targets (issue 5): cold ≤ 10 s, warm ≤ 2 s on 2 cores, peak memory < 1 GB for 10 minutes.
Times cover `render_plan` and writing the WAV and the JSON report (`write_outputs` with no
other exports), not the imports or the kit synthesis; CPU seconds are printed too, as wall
time on a shared machine includes waiting for other processes.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' library helper builds the stem records

TARGETS = {"cold_seconds": 10.0, "warm_seconds": 2.0, "peak_memory_mb_10min": 1024.0}
ARRANGEMENT = (("Intro", 16, 0.3), ("Build", 8, 0.6), ("Drop", 32, 1.0), ("Break", 16, 0.4),
               ("Drop 2", 20, 1.0), ("Outro", 8, 0.2))  # 100 bars: 3 min 2 s at 132 BPM
LONG_REPEATS = 4  # 400 bars: 12 minutes, over the 10 the memory target is about


def make_plan(*, repeats: int, bpm: float = 132.0):
    """A techno plan of `repeats` times `ARRANGEMENT` (100 bars each)."""
    from daemon.compose.plan import Plan, Section, StemQuery

    lanes = {0.3: ("atmo", "hihat"), 0.6: ("kick", "hihat", "bass", "fx"),
             1.0: ("kick", "clap", "hihat", "bass", "arp", "pad", "perc"),
             0.4: ("pad", "atmo"), 0.2: ("atmo", "kick")}
    sections = tuple(Section(f"{name} {round_ + 1}", bars, energy,
                             tuple(StemQuery(category) for category in lanes[energy]))
                     for round_ in range(repeats) for name, bars, energy in ARRANGEMENT)
    return Plan(prompt="bench techno", genre="techno", bpm=bpm, key="A minor", seed=1,
                moods=("dark",), structure=sections)


def run_child(records: Path, repeats: int, out_wav: Path, cache: Path) -> dict:
    """Render in a fresh interpreter; return its timing and peak memory."""
    command = [sys.executable, __file__, "--child", str(records), str(repeats), str(out_wav),
               str(cache)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(records: Path, repeats: int, out_wav: Path, cache: Path) -> None:
    from daemon.categories import load_categories
    from daemon.config import RenderSettings
    from daemon.render.drum_notes import load_drum_notes
    from daemon.render.outputs import write_outputs
    from daemon.render.patterns import load_patterns
    from daemon.render.render import render_plan

    stems = pickle.loads(records.read_bytes())
    settings = RenderSettings(sample_rate=44100, bit_depth=24, target_lufs=-14.0,
                              true_peak_db=-1.0, max_stretch=0.25, max_semitones=3,
                              sidechain=True, exports=("wav", "json"), cache_max_mb=2048)
    patterns = load_patterns(ROOT / "rules")
    categories = load_categories(ROOT / "rules")
    start, cpu = time.perf_counter(), _cpu_seconds()
    track = render_plan(make_plan(repeats=repeats), stems, settings=settings,
                        cache_dir=cache, patterns=patterns,
                        drum_notes=load_drum_notes(ROOT / "rules"), categories=categories)
    result = write_outputs(track, out_wav, exports=settings.exports)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                      "peak_memory_mb": round(peak_mb, 1),
                      "duration": round(result.duration, 3), "lufs": round(result.lufs, 2),
                      "true_peak_db": round(result.true_peak_db, 2)}))


def _cpu_seconds() -> float:
    """CPU time of this process so far: unlike wall time, not inflated by other load."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        records, repeats, out_wav, cache = args.child
        child(Path(records), int(repeats), Path(out_wav), Path(cache))
        return 0
    from render_helpers import kit_records

    from daemon.synth import synthesize_kit

    with tempfile.TemporaryDirectory(prefix="traum-bench-") as temp:
        folder = Path(temp)
        stems = kit_records(synthesize_kit(bpm=128.0, key="A minor", seed=1),
                            folder / "kit" / "TE Bench Kit", kit="TE Bench Kit")
        records = folder / "records.pkl"
        records.write_bytes(pickle.dumps(stems))
        cold = run_child(records, 1, folder / "cold.wav", folder / "cache")
        warm = run_child(records, 1, folder / "warm.wav", folder / "cache")
        long = run_child(records, LONG_REPEATS, folder / "long.wav", folder / "cache")
    figures = {"cold_seconds": cold["seconds"], "warm_seconds": warm["seconds"],
               "cold_cpu_seconds": cold["cpu_seconds"], "warm_cpu_seconds": warm["cpu_seconds"],
               "track_seconds": cold["duration"], "long_track_seconds": long["duration"],
               "peak_memory_mb_10min": long["peak_memory_mb"], "lufs": cold["lufs"],
               "true_peak_db": cold["true_peak_db"], "long_render_seconds": long["seconds"]}
    if args.json:
        print(json.dumps({"figures": figures, "targets": TARGETS}, indent=2))
    else:
        for name, value in figures.items():
            target = TARGETS.get(name)
            verdict = "" if target is None else (" ok" if value <= target else " OVER TARGET")
            limit = "" if target is None else f" (target ≤ {target:g})"
            print(f"{name:<22} {value:>10}{limit}{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
