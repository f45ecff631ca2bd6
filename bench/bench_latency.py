"""Latency from a prompt file's close to its finished WAV, through a running daemon.

Starts the daemon as a subprocess in a scratch folder (``python -m daemon --config X run``, or with
``--backend fake`` the test stand-in whose render is instant, which isolates the service
overhead: settle time, scheduler tick, lane hand-over), ingests a synthesised kit for the
real engine, then drops N prompts one after the other and times each from ``close()`` to
the moment both ``NAME.wav`` and ``NAME.json`` exist. Prints min / median / p90 / max and
writes them to bench/results/latency-<backend>.json.

    .venv/bin/python bench/bench_latency.py --backend real --n 5 --settle 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLL_SECONDS = 0.005  # 5 ms: well below the latencies measured
PROMPTS = ("driving industrial techno 138 bpm", "dark minimal techno", "deep house 122 bpm",
           "hypnotic acid techno", "düsterer treibender Techno")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("real", "fake"), default="real")
    parser.add_argument("--n", type=int, default=5, help="prompts to time (5)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="ingest.settle_seconds (2.0, the default config)")
    parser.add_argument("--timeout", type=float, default=600.0, help="per step, seconds")
    return parser.parse_args()


def write_config(root: Path, settle: float) -> Path:
    config = root / "config.toml"
    config.write_text(
        f'[paths]\ninbox = "{root / "inbox"}"\nlibrary = "{root / "library"}"\n'
        f'requests = "{root / "requests"}"\nrules = "{REPO / "rules"}"\n'
        f"[ingest]\nsettle_seconds = {settle}\n")
    return config


def start_daemon(backend: str, config: Path, root: Path) -> subprocess.Popen:
    if backend == "fake":
        argv = [sys.executable, str(REPO / "tests" / "fake_daemon.py"), "--config", str(config)]
    else:
        argv = [sys.executable, "-m", "daemon", "--config", str(config), "run"]
    env = {**os.environ, "TRAUM_FAKE_LOG": str(root / "calls.jsonl")}
    env.pop("NOTIFY_SOCKET", None)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=open(root / "daemon.log", "wb"), env=env)


def wait_until(check, what: str, timeout: float, daemon: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what} (daemon exit code {daemon.poll()})")
        time.sleep(POLL_SECONDS)


def fill_library(root: Path, daemon: subprocess.Popen, timeout: float) -> None:
    """Ingest one synthesised kit so the real renderer has stems."""
    from daemon.synth import synthesize_kit, write_kit_zip

    inbox = root / "inbox"
    write_kit_zip(synthesize_kit(seed=7), inbox / "BenchKit.zip")
    started = time.monotonic()
    wait_until(lambda: not (inbox / "BenchKit.zip").exists(), "the kit ingest", timeout, daemon)
    print(f"kit ingested in {time.monotonic() - started:.1f} s (incl. settle)")


def time_prompt(requests: Path, index: int, daemon: subprocess.Popen, timeout: float) -> float:
    # Users drop prompts at any moment, not just after the scheduler tick that finished
    # the previous one: a random pause up to the longest tick (0.5 s) avoids phase-locking.
    time.sleep(random.Random(index).uniform(0.0, 0.5))
    prompt = requests / f"bench{index:03d}.prompt"
    with open(prompt, "w", encoding="utf-8") as handle:
        handle.write(PROMPTS[index % len(PROMPTS)])
    closed = time.monotonic()
    wav, report = prompt.with_suffix(".wav"), prompt.with_suffix(".json")
    error = prompt.with_suffix(".error.txt")
    wait_until(lambda: (wav.exists() and report.exists()) or error.exists(),
               prompt.name, timeout, daemon)
    if error.exists():
        raise SystemExit(f"{prompt.name} failed: {error.read_text().strip()}")
    return time.monotonic() - closed


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="traum-bench-") as scratch:
        root = Path(scratch)
        for folder in ("inbox", "requests"):
            (root / folder).mkdir()
        daemon = start_daemon(args.backend, write_config(root, args.settle), root)
        try:
            if args.backend == "real":
                fill_library(root, daemon, args.timeout)
            latencies = [time_prompt(root / "requests", index, daemon, args.timeout)
                         for index in range(args.n)]
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
    result = {"backend": args.backend, "settle_seconds": args.settle, "n": args.n,
              "min": min(latencies), "median": statistics.median(latencies),
              "p90": sorted(latencies)[int(0.9 * (len(latencies) - 1))],
              "max": max(latencies)}
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in result.items()))
    out = REPO / "bench" / "results" / f"latency-{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
