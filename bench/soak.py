"""Soak: prompts and kits through one running daemon; memory, fds and threads stay flat.

Starts ``python -m daemon --config X run`` in a scratch folder, warms it up (one kit, a few
prompts), samples the daemon's RSS, open file descriptors, threads and child processes
while it is idle, then drops the rest of the kits and prompts in rounds (a kit, then a burst
of prompts, as a producer works) and samples again once everything is answered and the
daemon is idle. Pass when RSS grew at most 10 %, fds, threads and children are the same as
after warm-up, and every prompt has its WAV and JSON (no error file) and every kit file is
in the library. Prints the figures and writes bench/results/soak.json.

    .venv/bin/python bench/soak.py                      # 200 prompts, 20 kits
    .venv/bin/python bench/soak.py --prompts 40 --kits 5  # a shorter run
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ("driving techno {bpm} bpm", "deep house {bpm} bpm", "dark minimal techno {bpm} bpm",
           "hypnotic acid techno {bpm} bpm", "melodic house {bpm} bpm", "dub techno {bpm} bpm",
           "düsterer treibender Techno {bpm} bpm", "warm lofi {bpm} bpm")
MAX_RSS_GROWTH = 0.10
POLL_SECONDS = 0.2
IDLE = "ingest 0 running, 0 queued, 0 settling; render 0 running, 0 queued, 0 settling"


@dataclass(frozen=True)
class Sample:
    """The daemon process at one moment (RSS in MiB, its children's summed)."""

    rss_mb: float
    fds: int
    threads: int
    children: int
    children_rss_mb: float


@dataclass(frozen=True)
class SoakResult:
    warm: Sample
    end: Sample
    prompts: int
    answered: int
    errors: int
    kits: int
    files_expected: int
    files_stored: int
    seconds: float

    @property
    def rss_growth(self) -> float:
        return self.end.rss_mb / self.warm.rss_mb - 1.0

    def problems(self) -> list[str]:
        """What missed the targets; [] when the soak passed."""
        found = []
        if self.rss_growth > MAX_RSS_GROWTH:
            found.append(f"RSS grew {self.rss_growth:.1%} (limit {MAX_RSS_GROWTH:.0%})")
        for name in ("fds", "threads", "children"):
            before, after = getattr(self.warm, name), getattr(self.end, name)
            if before != after:
                found.append(f"{name}: {before} after warm-up, {after} at the end")
        if self.answered != self.prompts or self.errors:
            found.append(f"{self.answered} of {self.prompts} prompts answered, "
                         f"{self.errors} error files")
        if self.files_stored != self.files_expected:
            found.append(f"{self.files_stored} of {self.files_expected} kit files stored")
        return found


def sample(pid: int) -> Sample:
    """Read RSS, fds and threads of `pid` and RSS of its direct children from /proc."""
    status = _status(pid)
    children = [int(child) for task in os.listdir(f"/proc/{pid}/task")
                for child in _read(f"/proc/{pid}/task/{task}/children").split()]
    child_rss = sum(_status(child).get("VmRSS", 0) for child in children)
    return Sample(rss_mb=status["VmRSS"] / 1024, fds=len(os.listdir(f"/proc/{pid}/fd")),
                  threads=status["Threads"], children=len(children),
                  children_rss_mb=child_rss / 1024)


def _status(pid: int) -> dict[str, int]:
    fields = {}
    for line in _read(f"/proc/{pid}/status").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])  # VmRSS in kB
    return fields


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""  # the process or thread ended meanwhile


class Daemon:
    """The daemon subprocess and its sd_notify socket (STATUS= says when it is idle)."""

    def __init__(self, config: Path, log: Path) -> None:
        name = f"traum-soak-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name)
        self.sock.setblocking(False)
        self.status = ""
        env = {**os.environ, "NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000000"}
        with open(log, "ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "daemon", "--config", str(config), "run"],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env)

    def read_status(self) -> str:
        """The last STATUS= received (reading also keeps the socket from filling up)."""
        while True:
            try:
                message = self.sock.recv(65536).decode()
            except BlockingIOError:
                return self.status
            for line in message.splitlines():
                if line.startswith("STATUS="):
                    self.status = line[len("STATUS="):]

    def wait(self, check, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self.read_status()
            if self.proc.poll() is not None:
                raise SystemExit(f"the daemon exited ({self.proc.returncode}) before {what}")
            if time.monotonic() > deadline:
                raise SystemExit(f"gave up after {timeout:.0f} s waiting for {what}")
            time.sleep(POLL_SECONDS)

    def wait_idle(self, timeout: float) -> None:
        """Until STATUS= has said for a whole second that both lanes have nothing to do."""
        idle_since: list[float] = []

        def idle() -> bool:
            if self.read_status() != IDLE:
                idle_since.clear()
                return False
            idle_since[:] = idle_since or [time.monotonic()]
            return time.monotonic() - idle_since[0] >= 1.0

        self.wait(idle, "the daemon to go idle", timeout)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.sock.close()
        return code


def write_config(root: Path) -> Path:
    config = root / "config.toml"
    config.write_text(
        f'[paths]\ninbox = "{root / "inbox"}"\nlibrary = "{root / "library"}"\n'
        f'requests = "{root / "requests"}"\nrules = "{REPO / "rules"}"\n'
        "[ingest]\nsettle_seconds = 0.5\n[daemon]\nlog_level = \"INFO\"\n")
    return config


def write_kit(inbox: Path, number: int) -> int:
    """Synthesise kit `number` into a scratch folder, then move it into the inbox at once
    (a finished copy); return how many files it has. Every file's bytes are distinct."""
    from daemon.synth import synthesize_kit, write_kit_folder

    samples = synthesize_kit(seed=1000 + number, sample_rate=22050, bars=1,
                             bpm=float(118 + 2 * (number % 10)))
    # Some recipes ignore the seed: a gain unique to (kit, file) keeps every file distinct.
    samples = [replace(item, audio=item.audio * np.float32(1.0 - 1e-5 * (number * 50 + index)))
               for index, item in enumerate(samples)]
    scratch = inbox.parent / "scratch" / f"SoakKit{number:02d}"
    write_kit_folder(samples, scratch)
    os.rename(scratch, inbox / scratch.name)
    return len(samples)


def write_prompt(requests: Path, number: int) -> Path:
    prompt = requests / f"soak{number:03d}.prompt"
    text = PROMPTS[number % len(PROMPTS)].format(bpm=118 + number % 24)
    temp = prompt.with_suffix(".tmp")
    temp.write_text(text, encoding="utf-8")
    os.rename(temp, prompt)  # a finished file, as an editor's save or a copy leaves it
    return prompt


def answered(prompt: Path) -> bool:
    return prompt.with_suffix(".wav").exists() and prompt.with_suffix(".json").exists()


def run_soak(root: Path, *, prompts: int, kits: int, warmup: int, timeout: float
             ) -> SoakResult:
    """Warm up with one kit and `warmup` prompts, sample, run the rest, sample again."""
    for folder in ("inbox", "requests", "scratch"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    daemon = Daemon(write_config(root), root / "daemon.log")
    started = time.monotonic()
    try:
        daemon.wait(lambda: daemon.read_status() != "", "READY=1", timeout)
        files = write_kit(root / "inbox", 0)
        daemon.wait(lambda: not any((root / "inbox").iterdir()), "the first kit", timeout)
        written = [write_prompt(root / "requests", number) for number in range(warmup)]
        daemon.wait(lambda: all(answered(p) for p in written), "the warm-up", timeout)
        daemon.wait_idle(timeout)
        warm = sample(daemon.proc.pid)
        print(f"warm-up done: {warm}", flush=True)
        more, later = _rounds(root, daemon, first=len(written), prompts=prompts, kits=kits,
                              timeout=timeout)
        files, written = files + more, written + later
        daemon.wait_idle(timeout)
        end = sample(daemon.proc.pid)
    finally:
        code = daemon.stop()
    if code != 0:
        raise SystemExit(f"the daemon exited {code} on SIGTERM")
    stored = sum(1 for path in (root / "library" / "stems").rglob("*.wav"))
    return SoakResult(warm=warm, end=end, prompts=prompts,
                      answered=sum(answered(p) for p in written),
                      errors=len(list((root / "requests").glob("*.error.txt"))),
                      kits=kits, files_expected=files, files_stored=stored,
                      seconds=time.monotonic() - started)


def _rounds(root: Path, daemon: Daemon, *, first: int, prompts: int, kits: int,
            timeout: float) -> tuple[int, list[Path]]:
    """Drop kits 1.. and prompts `first`.. in `kits - 1` rounds and wait for all of them;
    return how many kit files were dropped and the prompts written."""
    files, rounds, written = 0, max(1, kits - 1), []
    remaining = list(range(first, prompts))
    for index in range(rounds):
        if index + 1 < kits:
            files += write_kit(root / "inbox", index + 1)
        burst = [write_prompt(root / "requests", number)
                 for number in remaining[index::rounds]]
        written += burst
        daemon.wait(lambda: all(answered(p) for p in burst),  # noqa: B023 - waited for here
                    f"round {index + 1}", timeout)
        print(f"round {index + 1}/{rounds}: {first + len(written)} prompts answered, "
              f"{sample(daemon.proc.pid)}", flush=True)
    daemon.wait(lambda: not any((root / "inbox").iterdir()), "every kit ingested", timeout)
    return files, written


def report(result: SoakResult) -> str:
    warm, end = result.warm, result.end
    return "\n".join([
        f"soak: {result.prompts} prompts, {result.kits} kits in {result.seconds / 60:.1f} min",
        f"RSS {warm.rss_mb:.0f} MB after warm-up, {end.rss_mb:.0f} MB at the end "
        f"({result.rss_growth:+.1%}); analysis workers {warm.children_rss_mb:.0f} -> "
        f"{end.children_rss_mb:.0f} MB",
        f"fds {warm.fds} -> {end.fds}; threads {warm.threads} -> {end.threads}; "
        f"child processes {warm.children} -> {end.children}",
        f"outputs: {result.answered}/{result.prompts} prompts answered, {result.errors} "
        f"errors; {result.files_stored}/{result.files_expected} kit files stored"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--kits", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10, help="prompts before the first "
                        "sample (10): caches and lazy imports fill up first")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per wait, seconds")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="traum-soak-") as scratch:
        root = args.keep or Path(scratch)
        result = run_soak(root, prompts=args.prompts, kits=args.kits, warmup=args.warmup,
                          timeout=args.timeout)
    print(report(result))
    out = REPO / "bench" / "results" / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**asdict(result), "rss_growth": result.rss_growth,
                               "problems": result.problems()}, indent=2))
    for problem in result.problems():
        print(f"FAIL: {problem}")
    return 1 if result.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
