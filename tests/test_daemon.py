"""The daemon as a real subprocess: events, stability, lanes, signals, sd_notify.

Two backends run the same scenarios:

- ``fake``: tests/fake_daemon.py — `run_daemon` with a stand-in `Work` that moves files
  and writes tiny WAVs, with adjustable delays and a JSON-lines call log, so every
  scheduling decision can be checked exactly and fast;
- ``real``: ``python -m daemon --config X run`` — the real engine on synthesised kits.

A notify socket in the abstract namespace is always set: READY=1 tells the test that the
startup scan is done.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from daemon.errors import PlanError, RenderError
from daemon.folders import scan_inbox
from daemon.service.processes import descendants, kill_descendants
from daemon.service.queue import Lane, LanePolicy

REPO = Path(__file__).resolve().parents[1]
FAKE_DAEMON = REPO / "tests" / "fake_daemon.py"
SETTLE = 0.5
AUDIO_SUFFIXES = (".wav", ".aif", ".aiff", ".flac")
FAKE_KIT_FILES = 6
TIMEOUT = {"fake": 20.0, "real": 300.0}  # seconds for one scenario's work to finish


# The real engine scenarios share one pre-trained classifier (`seed_library`), which keeps
# each to a few seconds; they all run by default.
REAL = pytest.param("real")


# Parametrizes the `space` fixture over backend × (inotify, polling).
WATCH_SETUPS = pytest.mark.parametrize("space", [
    pytest.param(("fake", False), id="fake-inotify"),
    pytest.param(("fake", True), id="fake-polling"),
    pytest.param(("real", False), id="real-inotify", marks=()),
    pytest.param(("real", True), id="real-polling", marks=()),
], indirect=True)


@cache
def kit_files(backend: str, seed: int = 0, *, big: bool = False) -> dict[str, bytes]:
    """Relative path → bytes of a construction kit; distinct content for each `seed` (the
    real store skips duplicate content). A big kit takes several seconds to ingest."""
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"traum-kit-{uuid.uuid4().hex}"
    if backend == "fake":
        sys.path.insert(0, str(FAKE_DAEMON.parent))
        from fake_daemon import write_wav

        files = {}
        for index in range(FAKE_KIT_FILES * (2 if big else 1)):
            write_wav(scratch, seconds=0.01 * (index + 1) + 0.001 * seed)
            files[f"Drums/Kicks/kick_{index:02d}.wav"] = scratch.read_bytes()
        scratch.unlink()
        return files
    from daemon.synth import synthesize_kit, write_kit_folder

    parts = 12 if big else 1  # warm, the engine stores ~20 files a second: a dozen kits
    samples = []              # outlast a render
    for part in range(parts):
        kit = synthesize_kit(seed=seed * 100 + part, sample_rate=22050, bars=1)
        for index, sample in enumerate(kit if big else kit[::3]):  # small: every category
            # Some recipes ignore the seed; a gain unique to (seed, part, index) keeps every
            # file's bytes distinct, so the store never skips one as a duplicate.
            gain = 1.0 / (1.0 + 1e-6 * (seed * 1000 + part * 50 + index))
            samples.append(replace(sample, name=f"Part{part:02d}/{sample.name}",
                                   audio=sample.audio * np.float32(gain)))
    write_kit_folder(samples, scratch)
    files = {p.relative_to(scratch).as_posix(): p.read_bytes()
             for p in sorted(scratch.rglob("*")) if p.is_file()}
    subprocess.run(["rm", "-rf", str(scratch)], check=True)
    return files


def one_file(backend: str, seed: int) -> bytes:
    """The bytes of one audio file that no other kit of the run contains."""
    return next(iter(kit_files(backend, seed).values()))


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def write_tree(dest: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)


class Daemon:
    """One daemon process with its notify socket and stderr log."""

    def __init__(self, argv: list[str], *, env: dict[str, str], log: Path) -> None:
        self.notify_name = f"traum-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.notify_name)
        self.messages: list[str] = []
        self.log_path = log
        with open(log, "ab") as stderr:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=stderr,
                env={**env, "NOTIFY_SOCKET": "@" + self.notify_name})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def drain(self) -> list[str]:
        self.sock.setblocking(False)
        try:
            while True:
                self.messages.append(self.sock.recv(65536).decode())
        except BlockingIOError:
            pass
        return self.messages

    def wait_for(self, check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self.drain()  # a full notify queue would block the daemon's sends
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited ({self.proc.returncode}) before {what}:\n"
                            f"{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{self.log()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.wait_for(lambda: "READY=1" in "\n".join(self.drain()), "READY=1", timeout)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, float]:
        """Send `signum`; return the exit code and the seconds it took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the daemon and its worker processes (as systemd kills a unit's cgroup);
        stopped first, so it cannot start new workers meanwhile."""
        self.proc.send_signal(signal.SIGSTOP)
        kill_descendants(self.proc.pid)
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.sock.close()


class Workspace:
    """inbox/, library/, requests/ and config.toml in a temporary folder."""

    def __init__(self, root: Path, backend: str) -> None:
        self.root, self.backend = root, backend
        self.inbox, self.library = root / "inbox", root / "library"
        self.requests, self.config = root / "requests", root / "config.toml"
        self.rules = root / "rules" if backend == "fake" else REPO / "rules"
        self.calls_path = root / "calls.jsonl"
        self.daemons: list[Daemon] = []
        for folder in (self.inbox, self.requests, root / "rules"):
            folder.mkdir(parents=True, exist_ok=True)
        self.write_config()

    def write_config(self, *, polling: bool = False, inbox: Path | None = None,
                     stop_timeout: float = 5.0, rescan_seconds: float = 60.0) -> None:
        self.config.write_text(
            f'[paths]\ninbox = "{inbox or self.inbox}"\nlibrary = "{self.library}"\n'
            f'requests = "{self.requests}"\nrules = "{self.rules}"\n'
            f"[ingest]\nsettle_seconds = {SETTLE}\n"
            f"[daemon]\npolling = {str(polling).lower()}\nrescan_seconds = {rescan_seconds}\n"
            f"stop_timeout = {stop_timeout}\nretries = 1\nretry_backoff_seconds = 0.2\n"
            'log_level = "DEBUG"\n')

    def start(self, *, env: dict[str, str] | None = None, **fake_env: float) -> Daemon:
        """Start a daemon and wait for READY=1; `fake_env` sets TRAUM_FAKE_* delays."""
        if self.backend == "fake":
            argv = [sys.executable, str(FAKE_DAEMON), "--config", str(self.config)]
        else:
            argv = [sys.executable, "-m", "daemon", "--config", str(self.config), "run"]
        full_env = {**os.environ, "TRAUM_FAKE_LOG": str(self.calls_path),
                    **{f"TRAUM_FAKE_{k.upper()}": str(v) for k, v in fake_env.items()}}
        full_env.pop("WATCHDOG_USEC", None)
        daemon = Daemon(argv, env={**full_env, **(env or {})}, log=self.root / "daemon.log")
        self.daemons.append(daemon)
        daemon.wait_ready()
        return daemon

    def stored(self) -> list[str]:
        """File names of the audio files in the library (any kit folder layout)."""
        stems = self.library / "stems"
        return sorted(p.name for p in stems.rglob("*")
                      if p.suffix.lower() in AUDIO_SUFFIXES) if stems.is_dir() else []

    def quarantined(self) -> list[str]:
        folder = self.library / "quarantine"
        return sorted(p.name for p in folder.rglob("*") if p.is_file()
                      and not p.name.endswith(".reason.txt")) if folder.is_dir() else []

    def calls(self, call: str, event: str | None = "start") -> list[str]:
        """Paths the fake work was called with (fake backend only)."""
        if not self.calls_path.exists():
            return []
        records = [json.loads(line) for line in self.calls_path.read_text().splitlines()]
        return [r.get("path", "") for r in records
                if r["call"] == call and (event is None or r.get("event") == event)]

    def inbox_empty(self) -> bool:
        return scan_inbox(self.inbox) == []

    def status(self) -> dict:
        done = subprocess.run([sys.executable, "-m", "daemon", "--config", str(self.config),
                               "status", "--json"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(params=["fake", REAL])
def space(request, tmp_path: Path, seed_library) -> Iterator[Workspace]:
    backend, polling = request.param if isinstance(request.param, tuple) else (
        request.param, False)
    workspace = Workspace(tmp_path, backend)
    if backend == "real":
        seed_library(workspace.library)  # skip the one-off classifier training per library
    workspace.write_config(polling=polling)
    yield workspace
    for daemon in workspace.daemons:
        daemon.close()


@pytest.fixture
def fake_space(tmp_path: Path) -> Iterator[Workspace]:
    workspace = Workspace(tmp_path, "fake")
    yield workspace
    for daemon in workspace.daemons:
        daemon.close()


def names(*kits: dict[str, bytes], loose: tuple[str, ...] = ()) -> list[str]:
    """The sorted file names `stored()` should list once `kits` and `loose` are ingested."""
    return sorted([Path(name).name for files in kits for name in files] + list(loose))


def assert_ingested_once(space: Workspace, expected: list[str]) -> None:
    """Every expected file is in the library exactly once; nothing was quarantined; the
    inbox is empty (the engine's status agrees, for the real one)."""
    assert space.stored() == expected
    assert space.quarantined() == []
    assert space.inbox_empty()
    if space.backend == "real":
        status = space.status()
        assert (status["stems"], status["quarantined"]) == (len(expected), 0)
        assert status["pending"]["inbox"] == []


def wait_stored(space: Workspace, daemon: Daemon, expected: list[str]) -> None:
    daemon.wait_for(lambda: space.stored() == expected and space.inbox_empty(),
                    f"{len(expected)} files stored and the inbox empty", TIMEOUT[space.backend])


def prepare_library(space: Workspace, daemon: Daemon) -> list[str]:
    """The real renderer needs stems: ingest a small kit first (the fake needs none)."""
    if space.backend == "real":
        write_tree(space.inbox / "Basics", kit_files("real", 100))
        wait_stored(space, daemon, names(kit_files("real", 100)))
    return space.stored()


def answered(prompt: Path) -> bool:
    return prompt.with_suffix(".wav").exists() and prompt.with_suffix(".json").exists()




# -- watching ----------------------------------------------------------------------------


@WATCH_SETUPS
def test_kits_present_at_start_are_ingested(space: Workspace) -> None:
    kit_a, kit_b = kit_files(space.backend, 1), kit_files(space.backend, 2)
    write_tree(space.inbox / "KitA", kit_a)
    (space.inbox / "kitb.zip").write_bytes(zip_bytes(kit_b))
    (space.inbox / ".DS_Store").write_bytes(b"junk")
    daemon = space.start()
    wait_stored(space, daemon, names(kit_a, kit_b))
    assert_ingested_once(space, names(kit_a, kit_b))
    if space.backend == "fake":
        assert sorted(space.calls("ingest")) == ["KitA", "kitb.zip"]


@WATCH_SETUPS
def test_slow_zip_is_ingested_once_after_it_stops_changing(space: Workspace) -> None:
    daemon = space.start()
    kit = kit_files(space.backend, 3)
    data = zip_bytes(kit)
    chunk = len(data) // 12 + 1
    with open(space.inbox / "slow.zip", "wb") as handle:
        for start in range(0, len(data), chunk):  # 12 chunks over 2.4 s, gaps < settle
            handle.write(data[start:start + chunk])
            handle.flush()
            time.sleep(0.2)
    closed_at = time.time()
    wait_stored(space, daemon, names(kit))
    assert_ingested_once(space, names(kit))  # a half-written zip would be quarantined
    if space.backend == "fake":
        assert space.calls("ingest") == ["slow.zip"]
        started = [json.loads(line)["t"] for line in space.calls_path.read_text().splitlines()
                   if '"ingest"' in line]
        assert min(started) >= closed_at


@WATCH_SETUPS
def test_folder_moved_in_with_mv_is_ingested_in_full(space: Workspace) -> None:
    daemon = space.start()
    kit = kit_files(space.backend, 4)
    outside = space.root / "Downloads" / "MovedKit"
    write_tree(outside, kit)
    subprocess.run(["mv", str(outside), str(space.inbox)], check=True)
    wait_stored(space, daemon, names(kit))
    assert_ingested_once(space, names(kit))


@WATCH_SETUPS
def test_part_file_renamed_to_zip_is_picked_up(space: Workspace) -> None:
    daemon = space.start()
    kit = kit_files(space.backend, 5)
    part = space.inbox / "renamed.zip.part"
    part.write_bytes(zip_bytes(kit))
    time.sleep(SETTLE * 4)  # long settled, but still a partial download
    assert part.exists() and space.stored() == []
    os.rename(part, space.inbox / "renamed.zip")
    wait_stored(space, daemon, names(kit))
    assert_ingested_once(space, names(kit))


@WATCH_SETUPS
def test_deleted_before_settle_and_junk_are_ignored(space: Workspace) -> None:
    daemon = space.start()
    gone = space.inbox / "gone.zip"
    gone.write_bytes(zip_bytes(kit_files(space.backend, 6)))
    time.sleep(SETTLE / 5)
    gone.unlink()
    junk = [space.inbox / name for name in (
        ".DS_Store", "._kick.wav", "__MACOSX/._kick.wav", "Thumbs.db", "a.zip.part",
        "b.zip.crdownload", "c.tmp", ".hidden.wav", "readme.txt")]
    junk += [space.requests / name for name in (
        "x.wav", "x.json", "x.error.txt", ".y.prompt", "z.txt", "w.prompt.tmp")]
    for path in junk:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"junk")
    (space.inbox / "sentinel.wav").write_bytes(one_file(space.backend, 7))
    wait_stored(space, daemon, ["sentinel.wav"])
    time.sleep(SETTLE * 4)  # anything junk would have settled by now
    assert space.stored() == ["sentinel.wav"] and space.quarantined() == []
    assert all(path.exists() for path in junk)
    assert sorted(p.name for p in space.requests.iterdir()) == sorted(
        p.name for p in junk if p.parent == space.requests)
    if space.backend == "fake":
        assert space.calls("ingest") == ["sentinel.wav"]
        assert space.calls("render") == []


def test_rescan_finds_entries_the_watcher_missed(fake_space: Workspace) -> None:
    fake_space.write_config(rescan_seconds=1)
    daemon = fake_space.start()
    os.rename(fake_space.inbox, fake_space.root / "old-inbox")  # the inotify watch goes
    fake_space.inbox.mkdir()  # with it: no events from the new folder
    kit = kit_files("fake", 8)
    write_tree(fake_space.inbox / "Unseen", kit)
    wait_stored(fake_space, daemon, names(kit))
    assert fake_space.calls("ingest") == ["Unseen"]


# -- work lanes ----------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["fake", REAL], indirect=True)
def test_prompt_dropped_while_a_big_kit_ingests_gets_its_wav_first(space: Workspace) -> None:
    daemon = space.start(file_seconds=0.4)  # the fake's big kit: about 5 s
    before = prepare_library(space, daemon)
    big = kit_files(space.backend, 9, big=True)
    write_tree(space.inbox / "BigKit", big)
    daemon.wait_for(lambda: "ingesting BigKit" in daemon.log(), "the big ingest to start",
                    TIMEOUT[space.backend])
    prompt = space.requests / "song.prompt"
    prompt.write_text("dark driving techno 132 bpm")
    daemon.wait_for(lambda: answered(prompt), "song.wav", TIMEOUT[space.backend])
    if space.backend == "fake":
        # The original leaves the inbox only once the whole kit is stored.
        assert (space.inbox / "BigKit").exists()
        assert len(space.stored()) < len(before) + len(big)
    wait_stored(space, daemon, sorted(before + names(big)))
    # The render lane did not wait for the ingest lane. (How soon the real WAV lands
    # depends on how the render and the analysis pool share two busy cores.)
    finished = f"ingest done: {space.inbox / 'BigKit'}"
    daemon.wait_for(lambda: finished in daemon.log(), "the ingest lane to finish")
    assert daemon.log().index("rendering song.prompt") < daemon.log().index(finished)


@pytest.mark.parametrize("space", ["fake", REAL], indirect=True)
def test_twenty_prompts_at_once_all_get_wavs(space: Workspace) -> None:
    daemon = space.start(render_seconds=0.05)
    prepare_library(space, daemon)
    prompts = [space.requests / f"p{index:02d}.prompt" for index in range(20)]
    for index, prompt in enumerate(prompts):
        prompt.write_text(f"minimal techno {120 + index} bpm")
    daemon.wait_for(lambda: all(answered(p) for p in prompts), "20 WAVs",
                    TIMEOUT[space.backend] * 2)
    assert not list(space.requests.glob("*.error.txt"))
    if space.backend == "fake":
        assert sorted(space.calls("render", "end")) == [p.name for p in prompts]


def test_bad_prompts_get_error_files_without_retries(space: Workspace) -> None:
    daemon = space.start()
    empty, latin = space.requests / "empty.prompt", space.requests / "latin.prompt"
    empty.write_text("  \n")
    latin.write_bytes("düsterer Techno".encode("latin-1"))
    errors = [p.with_suffix(".error.txt") for p in (empty, latin)]
    daemon.wait_for(lambda: all(e.exists() for e in errors), "two error files",
                    TIMEOUT[space.backend])
    assert "empty" in errors[0].read_text()
    assert "UTF-8" in errors[1].read_text()
    assert not empty.with_suffix(".wav").exists() and not latin.with_suffix(".wav").exists()
    if space.backend == "fake":
        time.sleep(0.5)  # longer than the 0.2 s retry backoff
        assert sorted(space.calls("render")) == ["empty.prompt", "latin.prompt"]


def test_editing_a_failed_prompt_renders_it(fake_space: Workspace) -> None:
    daemon = fake_space.start()
    prompt = fake_space.requests / "song.prompt"
    prompt.write_text("")
    error = prompt.with_suffix(".error.txt")
    daemon.wait_for(error.exists, "song.error.txt")
    prompt.write_text("acid techno")
    daemon.wait_for(lambda: answered(prompt) and not error.exists(),
                    "song.wav, and the stale error removed")


def test_transient_failure_is_retried(fake_space: Workspace) -> None:
    daemon = fake_space.start()
    prompt = fake_space.requests / "flaky.prompt"
    prompt.write_text("transient techno")
    daemon.wait_for(lambda: answered(prompt), "flaky.wav after a retry")
    assert fake_space.calls("render") == ["flaky.prompt", "flaky.prompt"]
    assert "retrying in 0.2 s" in daemon.log()
    assert not prompt.with_suffix(".error.txt").exists()


def test_failed_entry_waits_for_a_change_before_rescans_retry_it(fake_space: Workspace) -> None:
    fake_space.write_config(rescan_seconds=1)
    daemon = fake_space.start()
    stuck = fake_space.inbox / "stuck.wav"
    stuck.write_bytes(one_file("fake", 15))
    daemon.wait_for(lambda: "ingest failed for" in daemon.log(), "the ingest to give up")
    time.sleep(3)  # three rescans
    assert fake_space.calls("ingest") == ["stuck.wav"] * 2  # first try and one retry
    with stuck.open("ab") as handle:  # the user replaces or fixes it
        handle.write(b"\0")
    daemon.wait_for(lambda: len(fake_space.calls("ingest")) == 4, "a new try after the change")


def test_answered_prompts_are_not_rendered_again(fake_space: Workspace) -> None:
    done, fresh = fake_space.requests / "done.prompt", fake_space.requests / "fresh.prompt"
    done.write_text("old techno")
    for suffix in (".wav", ".json"):
        done.with_suffix(suffix).write_bytes(b"earlier output")
    os.utime(done, (time.time() - 60, time.time() - 60))
    fresh.write_text("new house")
    daemon = fake_space.start()
    daemon.wait_for(lambda: answered(fresh), "fresh.wav")
    time.sleep(SETTLE * 3)
    assert fake_space.calls("render") == ["fresh.prompt"]
    done.write_text("edited techno")  # editing makes it newer than its outputs
    daemon.wait_for(lambda: fake_space.calls("render", "end") == ["fresh.prompt",
                                                                   "done.prompt"],
                    "done.prompt rendered again")


# -- lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["fake", REAL], indirect=True)
def test_sigkill_during_ingest_then_restart_stores_every_file_once(space: Workspace) -> None:
    daemon = space.start(file_seconds=0.3)
    big = kit_files(space.backend, 10, big=True)
    write_tree(space.inbox / "BigKit", big)
    daemon.wait_for(lambda: len(space.stored()) >= 2, "part of the kit stored",
                    TIMEOUT[space.backend])
    daemon.kill()
    if space.backend == "fake":
        assert 2 <= len(space.stored()) < len(big)
    restarted = space.start()
    wait_stored(space, restarted, names(big))
    assert_ingested_once(space, names(big))
    if space.backend == "fake":
        assert len(space.calls("reconcile", None)) == 2


@pytest.mark.parametrize("space", ["fake", REAL], indirect=True)
def test_sigterm_during_a_long_item_exits_zero_in_time(space: Workspace) -> None:
    space.write_config(stop_timeout=2)
    daemon = space.start(file_seconds=3)  # one fake file takes longer than stop_timeout
    kit = kit_files(space.backend, 11, big=True)
    write_tree(space.inbox / "LongKit", kit)
    daemon.wait_for(lambda: "ingesting LongKit" in daemon.log(), "the ingest to start",
                    TIMEOUT[space.backend])
    workers = descendants(daemon.proc.pid)
    code, took = daemon.stop(signal.SIGTERM)
    assert code == 0
    assert took < 2 + 1.5, f"took {took:.1f} s"
    assert "STOPPING=1" in daemon.drain()
    time.sleep(0.2)
    assert [pid for pid in workers if running(pid)] == []  # no worker left orphaned
    restarted = space.start()  # the interrupted kit resumes
    wait_stored(space, restarted, names(kit))
    assert_ingested_once(space, names(kit))


def test_status_shows_the_running_daemons_work_in_progress(fake_space: Workspace) -> None:
    daemon = fake_space.start(file_seconds=1)
    write_tree(fake_space.inbox / "LongKit", kit_files("fake", 12, big=True))
    daemon.wait_for(lambda: "ingesting LongKit" in daemon.log(), "the ingest to start")
    daemon.wait_for(
        lambda: fake_space.status()["in_progress"].get("ingest", {}).get("running")
        == "LongKit", "traum status to report the running ingest", 15)
    assert fake_space.status()["in_progress"]["pid"] == daemon.proc.pid
    code, _ = daemon.stop(signal.SIGTERM)
    assert code == 0 and fake_space.status()["in_progress"] == {}


@pytest.mark.parametrize("space", ["fake", REAL], indirect=True)
def test_sighup_with_a_broken_config_keeps_the_old_one(space: Workspace) -> None:
    daemon = space.start()
    good = space.config.read_text()
    space.config.write_text("[daemon\npolling = ")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: "reload rejected" in daemon.log(), "the rejection logged")
    (space.inbox / "after.wav").write_bytes(one_file(space.backend, 12))
    wait_stored(space, daemon, ["after.wav"])  # still watching with the old settings
    space.config.write_text(good.replace(str(space.inbox), str(space.root / "inbox2")))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: "configuration reloaded" in daemon.log(), "the reload")
    (space.root / "inbox2" / "moved.wav").write_bytes(one_file(space.backend, 13))
    daemon.wait_for(lambda: space.stored() == ["after.wav", "moved.wav"],
                    "a file in the new inbox stored", TIMEOUT[space.backend])
    assert daemon.stop()[0] == 0


def test_sighup_with_broken_rules_keeps_the_old_ones(fake_space: Workspace) -> None:
    daemon = fake_space.start()
    (fake_space.root / "rules" / "broken.toml").write_text("[genre\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(lambda: "reload rejected" in daemon.log(), "the rejection logged")
    assert "broken.toml" in daemon.log()
    assert fake_space.calls("reload", None) == []
    prompt = fake_space.requests / "still.prompt"
    prompt.write_text("techno")
    daemon.wait_for(lambda: answered(prompt), "a render after the rejected reload")


def test_notify_socket_gets_ready_watchdog_status_and_stopping(space: Workspace) -> None:
    write_tree(space.inbox / "Waiting", kit_files(space.backend, 14))
    daemon = space.start(env={"WATCHDOG_USEC": "1000000"})  # ping every 0.5 s
    ready = next(m for m in daemon.drain() if "READY=1" in m)
    # READY=1 comes after the startup scan: the kit present at start is already tracked.
    assert "STATUS=ingest 0 running, 0 queued, 1 settling" in ready
    daemon.wait_for(lambda: sum("WATCHDOG=1" in m for m in daemon.drain()) >= 2,
                    "two watchdog pings", 10)
    code, took = daemon.stop(signal.SIGTERM)
    assert code == 0
    messages = daemon.drain()
    assert "STOPPING=1" in messages
    assert messages.index("STOPPING=1") > messages.index(ready)
    assert any(line.startswith("<6>traum.daemon: ") for line in daemon.log().splitlines())


# -- lanes, in-process -------------------------------------------------------------------


class Recorder:
    """A lane handler that records calls, can hold an item, and fails on request."""

    def __init__(self, failures: dict[str, list[Exception]] | None = None) -> None:
        self.calls: list[tuple[str, float]] = []
        self.failed: list[tuple[str, Exception]] = []
        self.failures = failures or {}
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def handle(self, path: Path) -> None:
        self.calls.append((path.name, time.monotonic()))
        self.entered.set()
        self.hold.wait(10)
        if self.failures.get(path.name):
            raise self.failures[path.name].pop(0)

    def on_failure(self, path: Path, exc: BaseException) -> None:
        self.failed.append((path.name, exc))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def make_lane(recorder: Recorder, *, retries: int = 2, backoff: float = 0.05) -> Lane:
    lane = Lane("test", handler=recorder.handle, on_failure=recorder.on_failure,
                policy=LanePolicy(retries=retries, backoff_seconds=backoff,
                                  retryable=lambda exc: not isinstance(exc, PlanError)))
    lane.start()
    return lane


def settle_lane(lane: Lane) -> None:
    deadline = time.monotonic() + 10
    while lane.depth() != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.01)


def test_lane_runs_in_order_and_ignores_waiting_duplicates(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.hold.clear()
    lane = make_lane(recorder)
    a, b, c = (tmp_path / name for name in "abc")
    assert lane.submit(a)
    assert recorder.entered.wait(5)
    assert lane.submit(b) and lane.submit(c)
    assert not lane.submit(b)
    assert lane.depth() == (1, 2) and lane.busy_with(a) and lane.busy_with(c)
    recorder.hold.set()
    settle_lane(lane)
    assert recorder.names() == ["a", "b", "c"]


def test_lane_reruns_a_path_submitted_while_it_runs(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.hold.clear()
    lane = make_lane(recorder)
    a = tmp_path / "a"
    lane.submit(a)
    assert recorder.entered.wait(5)
    assert lane.submit(a)  # changed while being worked on
    recorder.hold.set()
    settle_lane(lane)
    assert recorder.names() == ["a", "a"]


def test_lane_retries_with_doubling_backoff(tmp_path: Path) -> None:
    flaky = tmp_path / "flaky"
    flaky.write_text("x")
    recorder = Recorder({"flaky": [RenderError("locked"), RenderError("locked")]})
    lane = make_lane(recorder, retries=2, backoff=0.1)
    lane.submit(flaky)
    settle_lane(lane)
    times = [t for _, t in recorder.calls]
    assert recorder.names() == ["flaky"] * 3 and recorder.failed == []
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.2


def test_lane_gives_up_after_the_last_retry(tmp_path: Path) -> None:
    doomed = tmp_path / "doomed"
    doomed.write_text("x")
    errors = [RenderError("disk full"), RenderError("disk still full")]
    recorder = Recorder({"doomed": list(errors)})
    lane = make_lane(recorder, retries=1)
    lane.submit(doomed)
    settle_lane(lane)
    assert recorder.names() == ["doomed", "doomed"]
    assert recorder.failed == [("doomed", errors[1])]


def test_lane_does_not_retry_input_errors_or_vanished_paths(tmp_path: Path) -> None:
    bad, gone = tmp_path / "bad", tmp_path / "gone"
    bad.write_text("x")
    recorder = Recorder({"bad": [PlanError("empty prompt")], "gone": [RenderError("io")]})
    lane = make_lane(recorder)
    lane.submit(bad)
    lane.submit(gone)  # never existed: nothing to retry
    settle_lane(lane)
    assert recorder.names() == ["bad", "gone"]
    assert [name for name, _ in recorder.failed] == ["bad", "gone"]


def test_lane_survives_a_failing_failure_hook(tmp_path: Path) -> None:
    def explode(path: Path, exc: BaseException) -> None:
        raise OSError("cannot write the error file")

    recorder = Recorder({"a": [RuntimeError("bug")]})
    lane = Lane("test", handler=recorder.handle, on_failure=explode,
                policy=LanePolicy(retries=0, backoff_seconds=0))
    lane.start()
    lane.submit(tmp_path / "a")
    lane.submit(tmp_path / "b")
    settle_lane(lane)
    assert recorder.names() == ["a", "b"] and lane.alive()


def test_lane_stop_lets_the_running_item_finish_and_drops_the_rest(tmp_path: Path) -> None:
    recorder = Recorder()
    recorder.hold.clear()
    lane = make_lane(recorder)
    lane.submit(tmp_path / "running")
    assert recorder.entered.wait(5)
    lane.submit(tmp_path / "queued")
    lane.stop()
    assert not lane.submit(tmp_path / "late")
    assert not lane.join(0.2)  # still working on "running"
    recorder.hold.set()
    assert lane.join(5)
    assert recorder.names() == ["running"]


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a killed orphan waits for PID 1 to
    reap it, which a container's init may never do)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:].split()[0] != b"Z"


def test_kill_descendants_reaches_grandchildren() -> None:
    shell = subprocess.Popen(["sh", "-c", "sh -c 'sleep 60 & wait' & sleep 60 & wait"])
    deadline = time.monotonic() + 5
    while len(descendants(shell.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = kill_descendants(shell.pid)
    assert len(killed) == 3  # the inner sh, its sleep, the outer sleep
    assert shell.wait(5) == 0  # its children gone, the outer sh's wait returns
    time.sleep(0.1)
    assert not any(running(pid) for pid in killed)
