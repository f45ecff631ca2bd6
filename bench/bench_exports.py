"""What the exports cost: ``python bench/bench_exports.py [--json]``.

Synthesises the test kit (128 BPM, A minor), then renders `bench_render`'s 3-minute track
(100 bars at 132 BPM, every loop stretched) in fresh subprocesses, each timing one whole
render (`render_plan` and `write_outputs`):

- with the WAV and the JSON report only, and with every export (png, lanes, midi,
  dawproject), from an empty conform cache ("cold": a new tempo, the usual case for a new
  prompt) and with the cache filled ("warm": the fastest render, so the largest share);
- warm, with the default exports (the picture only);
- a 20-minute track (7 × 100 bars) with every export, with its peak resident memory.

Target (issue 14): all exports together add at most 50 % to a render's wall time. Imports
and matplotlib's font loading happen before the clock starts, as in a daemon after its first
render; CPU seconds are printed too, since wall time on a shared machine includes waiting for
other processes.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' helpers build records and render
sys.path.insert(0, str(ROOT / "bench"))

TARGET_SHARE = 0.5  # exports may add at most this share of the render's wall time
ALL_EXPORTS = "png,lanes,midi,dawproject"
LONG_REPEATS = 7  # 700 bars at 132 BPM: 21 minutes


def run_child(records: Path, repeats: int, out_dir: Path, cache: Path, exports: str) -> dict:
    """Render in a fresh interpreter; return its timings and peak memory."""
    command = [sys.executable, __file__, "--child", str(records), str(repeats), str(out_dir),
               str(cache), exports]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child(records: Path, repeats: int, out_dir: Path, cache: Path, exports: str) -> None:
    import mido  # noqa: F401  (loaded, as in a running daemon)
    from bench_render import make_plan
    from track_helpers import render_track

    from daemon.render.outputs import write_outputs

    stems = pickle.loads(records.read_bytes())
    names = tuple(name for name in exports.split(",") if name)
    if "png" in names:
        _warm_up_matplotlib()
    start, cpu = time.perf_counter(), _cpu_seconds()
    track = render_track(make_plan(repeats=repeats), stems, cache_dir=cache)
    rendered = time.perf_counter()
    write_outputs(track, out_dir / "track.wav", exports=names)
    end = time.perf_counter()
    print(json.dumps({"render_seconds": round(rendered - start, 3),
                      "output_seconds": round(end - rendered, 3),
                      "seconds": round(end - start, 3),
                      "cpu_seconds": round(_cpu_seconds() - cpu, 3),
                      "peak_memory_mb": round(resource.getrusage(
                          resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "duration": round(track.duration, 1),
                      "output_mb": round(_size(out_dir) / 2**20, 1)}))


def _warm_up_matplotlib() -> None:
    """Import matplotlib and draw one text: it loads its fonts on the first text it draws,
    once per process (a daemon pays it on its first render only)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1))
    FigureCanvasAgg(figure)
    figure.text(0.5, 0.5, "Traum", fontweight="bold")
    figure.canvas.draw()


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(folder: Path, records: Path) -> dict:
    """Cold and warm pairs (without and with exports) and the long track."""
    runs = {}
    for label, exports in (("plain", ""), ("exports", ALL_EXPORTS)):
        cache = folder / f"cache-{label}"
        for state in ("cold", "warm"):  # the cold run fills the cache the warm one reads
            out = folder / f"{state}-{label}"
            out.mkdir()
            runs[f"{state}_{label}"] = run_child(records, 1, out, cache, exports)
            shutil.rmtree(out)
    png_out = folder / "warm-png"  # the default exports: the picture only
    png_out.mkdir()
    runs["warm_png"] = run_child(records, 1, png_out, folder / "cache-plain", "png")
    long_out = folder / "long"
    long_out.mkdir()
    runs["long_exports"] = run_child(records, LONG_REPEATS, long_out, folder / "cache-plain",
                                     ALL_EXPORTS)
    return runs


def figures(runs: dict) -> dict:
    result = {}
    for state in ("cold", "warm"):
        plain, full = runs[f"{state}_plain"]["seconds"], runs[f"{state}_exports"]["seconds"]
        result[f"{state}_seconds_wav_json"] = plain
        result[f"{state}_seconds_all_exports"] = full
        result[f"{state}_exports_share"] = round((full - plain) / plain, 3)
        cpu_plain = runs[f"{state}_plain"]["cpu_seconds"]
        cpu_full = runs[f"{state}_exports"]["cpu_seconds"]
        result[f"{state}_exports_cpu_share"] = round((cpu_full - cpu_plain) / cpu_plain, 3)
    plain = runs["warm_plain"]["seconds"]
    result["warm_png_only_share"] = round((runs["warm_png"]["seconds"] - plain) / plain, 3)
    result["exports_output_mb_3min"] = runs["warm_exports"]["output_mb"]
    long = runs["long_exports"]
    result.update({"long_track_seconds": long["duration"], "long_render_seconds":
                   long["render_seconds"], "long_output_seconds": long["output_seconds"],
                   "long_output_mb": long["output_mb"],
                   "long_peak_memory_mb": long["peak_memory_mb"]})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        records, repeats, out_dir, cache, exports = args.child
        child(Path(records), int(repeats), Path(out_dir), Path(cache), exports)
        return 0
    from render_helpers import kit_records

    from daemon.synth import synthesize_kit

    with tempfile.TemporaryDirectory(prefix="traum-bench-exports-") as temp:
        folder = Path(temp)
        stems = kit_records(synthesize_kit(bpm=128.0, key="A minor", seed=1),
                            folder / "kit" / "TE Bench Kit", kit="TE Bench Kit")
        records = folder / "records.pkl"
        records.write_bytes(pickle.dumps(stems))
        runs = measure(folder, records)
    result = figures(runs)
    if args.json:
        print(json.dumps({"figures": result, "runs": runs,
                          "target_share": TARGET_SHARE}, indent=2))
        return 0
    for name, value in result.items():
        verdict = ""
        if name.endswith("_exports_share"):  # the target is on wall time
            verdict = (f"  (target ≤ {TARGET_SHARE:g}) "
                       f"{'ok' if value <= TARGET_SHARE else 'OVER TARGET'}")
        print(f"{name:<28} {value:>10}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
