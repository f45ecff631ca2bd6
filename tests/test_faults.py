"""Faults of the machine against the real daemon: a full, read-only or forbidden disk, a locked
or damaged stems.db, files deleted by hand, the clock jumping back.

Each scenario runs ``traum run`` as a subprocess on synthesised kits and checks what the
issue asks of every fault: one log line naming the folder, the cause and what to do; no
traceback; the kit stays in the inbox (the journal resumes it); the affected lane pauses
(``STATUS=`` and `traum status` say why) and resumes by itself once the fault is cleared.

Full and read-only disks are real: a small tmpfs mounted over the folder (root only). Where
mounting is refused (or ``TRAUM_TEST_INJECT_FAULTS=1``), the disk-full scenarios inject
``OSError(ENOSPC)`` into the daemon's file writes instead (tests/fault_daemon.py) and the
scenarios that need SQLite itself to hit the fault are skipped with the reason.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from library_helpers import garble_header
from test_daemon import REPO, Daemon, Workspace, answered, kit_files, names, write_tree

TIMEOUT = 300.0  # seconds for real work (a cold daemon, a busy machine)
FAULT_DAEMON = REPO / "tests" / "fault_daemon.py"
CLOCK_DAEMON = REPO / "tests" / "clock_daemon.py"


@functools.cache
def can_mount() -> bool:
    """True when this process may mount a tmpfs (root with CAP_SYS_ADMIN), unless
    ``TRAUM_TEST_INJECT_FAULTS=1`` asks for the injected faults (to test that fallback)."""
    if os.environ.get("TRAUM_TEST_INJECT_FAULTS") == "1":
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"traum-mount-{uuid.uuid4().hex}"
    probe.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                              capture_output=True)
        if done.returncode == 0:
            subprocess.run(["umount", str(probe)], check=True)
        return done.returncode == 0
    except FileNotFoundError:
        return False
    finally:
        probe.rmdir()


class Disk:
    """One folder the test can fill up (and free again) or turn read-only.

    On a tmpfs of `size_mb` when mounting works, else by injecting the error into the
    daemon's writes (`injected` is then True and `daemon_env` must reach the daemon).
    """

    def __init__(self, folder: Path, size_mb: int, scratch: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.injected = not can_mount()
        self.flag = scratch / f"fault-{uuid.uuid4().hex}"
        self.filler = folder / ".filler"
        if not self.injected:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                            str(folder)], check=True)

    @property
    def full(self) -> str:
        """How the daemon words this disk being full: a tmpfs filled up has 0 MB left; an
        injected fault leaves the real disk's free space in the message."""
        return "disk full (" if self.injected else "disk full (0 MB free)"

    def daemon_env(self, number: int = errno.ENOSPC) -> dict[str, str]:
        return {"TRAUM_FAULT_DIR": str(self.folder), "TRAUM_FAULT_FLAG": str(self.flag),
                "TRAUM_FAULT_ERRNO": str(number)} if self.injected else {}

    def fill(self, *, leave: int = 0) -> None:
        """Use up the disk, leaving about `leave` bytes."""
        if self.injected:
            self.flag.touch()
            return
        block = b"\0" * (1 << 16)
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while os.write(fd, block):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        os.truncate(self.filler, max(0, self.filler.stat().st_size - leave))

    def free(self) -> None:
        self.flag.unlink(missing_ok=True)
        self.filler.unlink(missing_ok=True)

    def remount(self, mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.folder)], check=True)

    def unmount(self) -> None:
        if not self.injected:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[list[Disk]]:
    made: list[Disk] = []
    yield made
    for disk in reversed(made):
        disk.unmount()


@pytest.fixture
def space(tmp_path: Path, seed_library, disks) -> Iterator[Workspace]:
    """A real workspace; torn down (daemons killed) before the disks are unmounted."""
    workspace = Workspace(tmp_path, "real")
    workspace.seed = seed_library
    yield workspace
    for daemon in workspace.daemons:
        daemon.close()


def disk(space: Workspace, disks: list[Disk], folder: Path, size_mb: int) -> Disk:
    made = Disk(folder, size_mb, space.root)
    disks.append(made)
    if folder == space.library:
        space.seed(space.library)  # the pre-trained classifier, on the new disk
    return made


def start(space: Workspace, *, env: dict[str, str] | None = None, debug: bool = False,
          prefix: tuple[str, ...] = ()) -> Daemon:
    """`traum run` (through the fault launcher when a fault is injected) until READY=1."""
    env = env or {}
    launcher = [str(FAULT_DAEMON)] if "TRAUM_FAULT_DIR" in env else ["-m", "daemon"]
    argv = [*prefix, sys.executable, *launcher, "--config", str(space.config), "run",
            *(["--debug"] if debug else [])]
    full_env = {**os.environ, **env, "WATCHDOG_USEC": "1000000"}  # STATUS= every 0.5 s
    daemon = Daemon(argv, env=full_env, log=space.root / "daemon.log")
    space.daemons.append(daemon)
    daemon.wait_ready(timeout=TIMEOUT)
    return daemon


def status_now(daemon: Daemon) -> str:
    """The last ``STATUS=`` the daemon sent."""
    lines = [line for message in daemon.drain() for line in message.splitlines()
             if line.startswith("STATUS=")]
    return lines[-1] if lines else ""


def wait_status(daemon: Daemon, text: str) -> None:
    daemon.wait_for(lambda: text in status_now(daemon), f"STATUS= saying {text!r}", TIMEOUT)


def traum(space: Workspace, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(space.config), *args],
                          capture_output=True, text=True, timeout=TIMEOUT)


def stored(space: Workspace) -> list[str]:
    return space.stored()


def wait_ingested(space: Workspace, daemon: Daemon, expected: list[str]) -> None:
    daemon.wait_for(lambda: stored(space) == expected and space.inbox_empty(),
                    f"{len(expected)} files stored and the inbox empty", TIMEOUT)


def prepare_library(space: Workspace, daemon: Daemon, seed: int = 100) -> list[str]:
    write_tree(space.inbox / "Basics", kit_files("real", seed))
    expected = names(kit_files("real", seed))
    wait_ingested(space, daemon, expected)
    return expected


def assert_no_traceback(daemon: Daemon) -> None:
    assert "Traceback" not in daemon.log(), daemon.log()


def fault_lines(daemon: Daemon, text: str) -> list[str]:
    """The log lines holding `text`, once there is one: a lane logs a fault just after it
    pauses, so the status can show the pause before the log has the line."""
    daemon.wait_for(lambda: text in daemon.log(), f"a log line with {text!r}")
    return [line for line in daemon.log().splitlines() if text in line]


def require_real_disk(made: Disk, why: str) -> None:
    if made.injected:
        pytest.skip(f"cannot mount a tmpfs here: {why} needs a real full or read-only disk")


# -- a full disk ------------------------------------------------------------------------


def test_library_disk_full_during_ingest_pauses_and_resumes(space: Workspace, disks) -> None:
    library = disk(space, disks, space.library, 24)
    daemon = start(space, env=library.daemon_env())
    kit = kit_files("real", 21)
    library.fill(leave=256 << 10)  # the journal fits, the kit's 850 kB of audio do not
    write_tree(space.inbox / "FullKit", kit)
    wait_status(daemon, f"ingest paused: library {library.full}")
    [line] = fault_lines(daemon, "ingest paused:")
    assert f"at {space.library}: free space on that disk" in line
    assert (space.inbox / "FullKit").is_dir()  # the kit stays until every file is stored
    assert "daemon ingest paused: library disk full" in traum(space, "status").stdout
    library.free()
    wait_ingested(space, daemon, names(kit))
    daemon.wait_for(lambda: "ingest resumed: no longer library disk full" in daemon.log(),
                    "the lane to resume")
    assert traum(space, "doctor").returncode == 0  # every file once, every row its file
    assert_no_traceback(daemon)


def test_library_disk_full_at_the_database_write(space: Workspace, disks) -> None:
    library = disk(space, disks, space.library, 24)
    require_real_disk(library, "SQLite's own write")
    daemon = start(space, debug=True)
    kit = kit_files("real", 22)
    library.fill()  # nothing left: the first journal write (claiming the kit) fails
    write_tree(space.inbox / "DbKit", kit)
    wait_status(daemon, f"ingest paused: library {library.full}")
    [error] = fault_lines(daemon, "sqlite3.OperationalError: database or disk is full")
    assert error.endswith("sqlite3.OperationalError: database or disk is full")  # --debug
    library.free()
    wait_ingested(space, daemon, names(kit))
    daemon.wait_for(lambda: "ingest done" in daemon.log(), "the ingest lane to finish")
    assert traum(space, "doctor").returncode == 0
    library.fill()  # the render lane meets the same full disk at its database writes
    prompt = space.requests / "dbfull.prompt"
    prompt.write_text("minimal techno 126 bpm")
    # The pause may end by itself: the render's own temp files, removed, free a few pages.
    daemon.wait_for(lambda: f"render paused: library {library.full}" in daemon.log(),
                    "the render lane paused", TIMEOUT)
    assert not prompt.with_suffix(".error.txt").exists()
    library.free()
    daemon.wait_for(lambda: answered(prompt), "dbfull.wav once the disk has room", TIMEOUT)
    assert traum(space, "doctor").returncode == 0


def test_outbox_disk_full_during_render_pauses_renders(space: Workspace, disks) -> None:
    outbox = disk(space, disks, space.requests, 96)
    daemon = start(space, env=outbox.daemon_env())
    prepare_library(space, daemon)
    outbox.fill(leave=16 << 10)
    prompt = space.requests / "full.prompt"
    prompt.write_text("driving techno 132 bpm")
    wait_status(daemon, f"render paused: outbox {outbox.full}")
    [line] = fault_lines(daemon, "render paused:")
    assert f"at {space.requests}: free space on that disk" in line
    assert "daemon render paused: outbox disk full" in traum(space, "status").stdout
    assert not prompt.with_suffix(".error.txt").exists()  # a fault, not a bad prompt
    outbox.free()
    daemon.wait_for(lambda: "render resumed: no longer outbox disk full" in daemon.log(),
                    "full.wav once the disk has room", TIMEOUT)
    assert answered(prompt)
    assert not prompt.with_suffix(".error.txt").exists()
    assert_no_traceback(daemon)


def test_cache_disk_full_slows_work_but_loses_nothing(space: Workspace, disks) -> None:
    cache = disk(space, disks, space.library / "cache", 16)
    space.seed(space.library)  # the pre-trained classifier, on the small disk
    daemon = start(space, env=cache.daemon_env())
    cache.fill()
    expected = prepare_library(space, daemon)  # stored although the classifier cannot be
    daemon.wait_for(lambda: f"Basics is in the library; its classifier and vectors "
                    f"catch up later: cache {cache.full}" in daemon.log(), "the retraining skipped")
    prompt = space.requests / "cached.prompt"
    prompt.write_text("deep house 122 bpm")
    daemon.wait_for(lambda: answered(prompt), "cached.wav", TIMEOUT)
    lines = fault_lines(daemon, f"cache {cache.full}")
    assert any("renders go on, slower; free space on that disk or lower render.cache_max_mb"
               in line for line in lines), lines
    assert stored(space) == expected and not prompt.with_suffix(".error.txt").exists()
    assert "paused" not in daemon.log()
    assert_no_traceback(daemon)


# -- a read-only library, a forbidden kit file ------------------------------------------------


def test_read_only_library_at_start_waits_for_read_write(space: Workspace, disks) -> None:
    library = disk(space, disks, space.library, 24)
    require_real_disk(library, "a read-only stems.db")
    daemon = start(space)
    first = prepare_library(space, daemon)
    assert daemon.stop()[0] == 0
    library.remount("ro")
    kit = kit_files("real", 23)
    write_tree(space.inbox / "LaterKit", kit)
    daemon = start(space)
    wait_status(daemon, "ingest paused: library read-only")
    line = fault_lines(daemon, "paused")[0]
    assert f"mount -o remount,rw {space.library}" in line
    cli = traum(space, "status")  # the library cannot be opened by the CLI either
    assert cli.returncode == 1 and cli.stderr.count("\n") == 1
    assert "library read-only" in cli.stderr
    assert (space.inbox / "LaterKit").is_dir()
    library.remount("rw")
    wait_ingested(space, daemon, sorted(first + names(kit)))
    assert_no_traceback(daemon)


def test_unreadable_kit_file_holds_that_kit_only(space: Workspace) -> None:
    space.library.mkdir()
    space.seed(space.library)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that allow it
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv cannot be denied a file")
        caps = "-dac_override,-dac_read_search"
        prefix = ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")
    daemon = start(space, prefix=prefix)
    locked, other = kit_files("real", 24), kit_files("real", 25)
    write_tree(space.inbox / "Locked", locked)
    secret = space.inbox / "Locked" / sorted(locked)[0]
    secret.chmod(0)
    write_tree(space.inbox / "Other", other)
    daemon.wait_for(lambda: "ingest holds Locked: inbox permission denied on Locked/"
                    in daemon.log(), "the locked kit held", TIMEOUT)
    [line] = fault_lines(daemon, "ingest holds Locked")
    assert f"chmod -R a+rX {space.inbox / 'Locked'}" in line
    wait_status(daemon, "1 held")
    daemon.wait_for(lambda: set(names(other)) <= set(stored(space)), "the other kit stored",
                    TIMEOUT)
    assert f"held Locked: inbox permission denied on Locked/{sorted(locked)[0]}" in traum(
        space, "status").stdout
    assert (space.inbox / "Locked").is_dir()
    secret.chmod(0o644)
    wait_ingested(space, daemon, sorted(names(locked) + names(other)))
    daemon.wait_for(lambda: "Locked no longer held" in daemon.log(), "the hold ended")
    assert_no_traceback(daemon)


# -- the database ---------------------------------------------------------------------------


def test_database_locked_beyond_the_busy_timeout(space: Workspace) -> None:
    space.library.mkdir()
    space.seed(space.library)
    daemon = start(space)
    holder = sqlite3.connect(space.library / "stems.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the write lock, held past the daemon's 10 s wait
    kit = kit_files("real", 26)
    write_tree(space.inbox / "Waiting", kit)
    wait_status(daemon, f"ingest paused: stems.db locked by another process (pid {os.getpid()}")
    [line] = fault_lines(daemon, "ingest paused:")
    assert "let that program finish or stop it" in line
    assert "paused: stems.db locked" in traum(space, "status").stdout
    assert (space.inbox / "Waiting").is_dir()
    holder.execute("ROLLBACK")
    holder.close()
    wait_ingested(space, daemon, names(kit))
    assert_no_traceback(daemon)


def test_damaged_database_is_refused_until_restored(space: Workspace) -> None:
    space.library.mkdir()
    space.seed(space.library)
    daemon = start(space)
    first = prepare_library(space, daemon)
    assert traum(space, "backup").returncode == 0
    assert daemon.stop()[0] == 0
    garble_header(space.library / "stems.db")
    kit = kit_files("real", 27)
    write_tree(space.inbox / "AfterDamage", kit)
    daemon = start(space)
    wait_status(daemon, "ingest paused: stems.db damaged (file is not a database)")
    line = fault_lines(daemon, "cannot open the library")[0]
    assert "traum doctor --restore" in line
    cli = traum(space, "status")
    assert cli.returncode == 1 and "traum doctor" in cli.stderr
    assert cli.stderr.count("\n") == 1
    assert daemon.stop()[0] == 0
    restored = traum(space, "doctor", "--restore")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    daemon = start(space)
    wait_ingested(space, daemon, sorted(first + names(kit)))
    assert_no_traceback(daemon)


# -- files deleted by hand, the clock ----------------------------------------------------------


def test_deleted_stem_and_prompt_deleted_mid_render(space: Workspace) -> None:
    space.library.mkdir()
    space.seed(space.library)
    daemon = start(space)
    prepare_library(space, daemon)
    victim = next(p for p in (space.library / "stems").rglob("*.wav"))
    victim.unlink()
    first = space.requests / "first.prompt"
    first.write_text("minimal techno 128 bpm")
    daemon.wait_for(lambda: answered(first), "first.wav without the deleted stem", TIMEOUT)
    line = fault_lines(daemon, f"{victim}: stored stem deleted by hand")[0]
    assert "left out of renders; run traum doctor --fix" in line
    # Delete a prompt while its render waits to record itself (the database is locked).
    holder = sqlite3.connect(space.library / "stems.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    gone = space.requests / "gone.prompt"
    gone.write_text("dub techno 118 bpm")
    daemon.wait_for(lambda: answered(gone), "gone.wav and gone.json written", TIMEOUT)
    gone.unlink()
    holder.execute("ROLLBACK")
    holder.close()
    daemon.wait_for(lambda: "gone.prompt was deleted" in daemon.log(), "the deletion noted",
                    TIMEOUT)
    assert gone.with_suffix(".wav").exists() and not gone.with_suffix(".error.txt").exists()
    after = space.requests / "after.prompt"
    after.write_text("acid techno 135 bpm")
    daemon.wait_for(lambda: answered(after), "a render after both faults", TIMEOUT)
    assert_no_traceback(daemon)


def test_clock_jumping_back_stops_nothing(space: Workspace) -> None:
    space.library.mkdir()
    space.seed(space.library)
    space.write_config(rescan_seconds=1)
    daemon = start_on_fake_clock(space)
    prepare_library(space, daemon)
    # A prompt written before the jump carries a time the clock reaches again only later:
    # its outputs look older than it, now and at every rescan.
    ahead = space.requests / "ahead.prompt"
    ahead.write_text("hard techno 140 bpm")
    os.utime(ahead, ns=(ahead.stat().st_atime_ns, ahead.stat().st_mtime_ns + 3600 * 10**9))
    daemon.wait_for(lambda: answered(ahead), "ahead.wav", TIMEOUT)
    daemon.proc.send_signal(signal.SIGUSR1)  # the daemon's wall clock goes back an hour
    daemon.wait_for(lambda: "clock moved back by 3600 s" in daemon.log(), "the jump")
    kit = kit_files("real", 28)
    write_tree(space.inbox / "AfterJump", kit)
    later = space.requests / "later.prompt"
    later.write_text("melodic techno 124 bpm")
    daemon.wait_for(lambda: answered(later) and set(names(kit)) <= set(stored(space)),
                    "a kit and a prompt handled after the jump", TIMEOUT)
    seen = daemon.log().count("rescan:")
    daemon.wait_for(lambda: daemon.log().count("rescan:") >= seen + 3, "three more rescans")
    assert daemon.log().count("rendering ahead.prompt") == 1
    assert_no_traceback(daemon)


def start_on_fake_clock(space: Workspace) -> Daemon:
    argv = [sys.executable, str(CLOCK_DAEMON), "--config", str(space.config), "run"]
    daemon = Daemon(argv, env={**os.environ, "WATCHDOG_USEC": "1000000"},
                    log=space.root / "daemon.log")
    space.daemons.append(daemon)
    daemon.wait_ready(timeout=TIMEOUT)
    return daemon
