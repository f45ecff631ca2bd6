"""The systemd unit for `traum run`: rendered from the config, installed on request.

The daemon reads its config, rules and venv, writes only inbox, library and requests, and
needs no network, no device, no capability and no privileged system call, so the unit takes
all of that away (systemd.exec(5)). A system unit runs as a dedicated account (`Account`).
``systemd-analyze security --offline=yes`` (systemd 252) rates the system unit 0.2 SAFE and the
``--user`` unit 2.4 OK: a user manager holds no capabilities, so it cannot drop them, and the
offline analysis counts those and the missing User= (tests/test_unit.py checks both). Two
settings depend on the embedding backend: CUDA needs /dev/nvidia*, and the CLAP backend's
torch and numba compile code at run time, which needs memory that is written, then executed.

``traum service install`` writes the unit and reloads systemd; enabling it stays the user's
decision.

A cluster worker (``traum service print --worker``: `traum worker`) is sandboxed the same
way but for the network: it talks to the cluster's PostgreSQL, so it may open IPv4 and IPv6
sockets, and it starts once the network is online and remote file systems are mounted (the
shared library and outbox). It sends no watchdog pings and reloads nothing.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from daemon.config import Paths
from daemon.errors import TraumError
from daemon.fsutil import write_text_atomic
from daemon.service.account import Account

log = logging.getLogger("traum.unit")

UNIT_NAME = "traum-engine.service"
WORKER_UNIT_NAME = "traum-worker.service"
WATCHDOG_SECONDS = 60  # no STATUS/WATCHDOG ping for this long means the process hangs
_STOP_GRACE = 5  # systemd waits this much longer than daemon.stop_timeout before SIGKILL
_HOMES = (Path("/home"), Path("/root"), Path("/run/user"))
_TEMPS = (Path("/tmp"), Path("/var/tmp"))


@dataclass(frozen=True)
class UnitSpec:
    """What the unit is rendered from.

    exe
        Absolute path of the ``traum`` executable, or a command that runs it such as
        ``/venv/bin/python -m daemon`` (split like a shell would, unless it is an existing
        file whose path contains spaces).
    config_path
        The config file the service runs with; its folder is the working directory.
    paths
        Folders from that config; inbox, library and requests become ReadWritePaths=.
        They must exist when the service starts (systemd refuses to start otherwise).
    account
        The system unit's ``User=``/``Group=``; None for a ``--user`` unit.
    stop_timeout
        ``daemon.stop_timeout``; systemd's own stop timeout is a little longer, so the
        daemon's clean exit always comes before systemd's SIGKILL.
    gpu
        ``embedding.device = "cuda"``: /dev/nvidia* must stay visible.
    jit
        ``embedding.backend = "clap"``: torch (oneDNN) and numba need write+execute memory.
    worker
        A unit for `traum worker` (a cluster's jobs) rather than the daemon `traum run`.
    """

    exe: str
    config_path: Path
    paths: Paths
    account: Account | None
    stop_timeout: float = 20.0
    gpu: bool = False
    jit: bool = False
    worker: bool = False

    @property
    def user(self) -> bool:
        return self.account is None


def render_unit(spec: UnitSpec) -> str:
    """Return the unit file text for `spec` (a ``--user`` unit when it has no account)."""
    command = _split_exe(spec.exe)
    paths = spec.paths
    writable = (paths.inbox, paths.library, paths.requests)
    every = (Path(command[0]), spec.config_path, paths.rules, *writable)
    verb = "worker" if spec.worker else "run"
    lines = [
        "[Unit]",
        *_describe(worker=spec.worker),
        "",
        "[Service]",
        "Type=notify",
        f"ExecStart={_command(*command, '--config', str(spec.config_path), verb)}",
        *([] if spec.worker else ["ExecReload=/bin/kill -HUP $MAINPID"]),
        f"WorkingDirectory={_escape(str(spec.config_path.parent))}",
        *_identity(spec.account),
        "Restart=on-failure",
        "RestartSec=5",
        *([] if spec.worker else [f"WatchdogSec={WATCHDOG_SECONDS}"]),
        f"TimeoutStopSec={math.ceil(spec.stop_timeout) + _STOP_GRACE}",
        "KillSignal=SIGTERM",
        "# SIGTERM to the main process only, which winds down its own workers.",
        "KillMode=mixed",
        "Environment=PYTHONUNBUFFERED=1",
        *_jit_environment(spec),
        "# Outputs are created 0666 & ~umask: rendered tracks readable by everyone.",
        "UMask=0022",
        "",
        *_file_system(writable,
                      home="read-only" if any(_under(p, _HOMES) for p in every) else "yes",
                      private_tmp=not any(_under(p, _TEMPS) for p in every)),
        *_privileges(user=spec.user, network=spec.worker),
        *_kernel(gpu=spec.gpu),
        *_system_calls(jit=spec.jit),
        "",
        "[Install]",
        f"WantedBy={'default.target' if spec.user else 'multi-user.target'}",
    ]
    return "\n".join(lines) + "\n"


def _describe(*, worker: bool) -> list[str]:
    if not worker:
        return ["Description=Traum-Engine generative music daemon (inbox → library, "
                "prompts → WAV)", "After=local-fs.target"]
    return ["Description=Traum-Engine cluster worker (queued ingest and render jobs)",
            "# The cluster's PostgreSQL and the shared library/outbox mounts come first.",
            "Wants=network-online.target",
            "After=local-fs.target remote-fs.target network-online.target"]


def _identity(account: Account | None) -> list[str]:
    if account is None:
        return []
    return [f"User={account.user}", f"Group={account.group}"]


def _jit_environment(spec: UnitSpec) -> list[str]:
    if not spec.jit:
        return []
    return ["# Numba (imported by the CLAP backend) needs a writable cache; its defaults are",
            "# read-only here.",
            f"Environment={_quote('NUMBA_CACHE_DIR=' + str(spec.paths.cache / 'numba'))}"]


def _file_system(writable: tuple[Path, ...], *, home: str, private_tmp: bool) -> list[str]:
    return [
        "# Files: everything read-only but the three folders.",
        "ProtectSystem=strict",
        f"ReadWritePaths={' '.join(_quote(str(p)) for p in writable)}",
        "# read-only, not hidden, when the venv or the folders live under a home folder;",
        "# ReadWritePaths= above still wins over read-only.",
        f"ProtectHome={home}",
        "# no when a folder lives in /tmp: a private /tmp would hide it.",
        f"PrivateTmp={'yes' if private_tmp else 'no'}",
        "PrivateMounts=yes",
    ]


def _privileges(*, user: bool, network: bool) -> list[str]:
    lines = [
        "# Privileges: none, and no way to gain any.",
        "NoNewPrivileges=yes",
        "# Other accounts appear as nobody; access checks still use the real ids.",
        "PrivateUsers=yes",
        "RestrictSUIDSGID=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "RestrictRealtime=yes",
        *(_network() if network else [
            "# Local sockets only (sd_notify, the journal, multiprocessing); no network at all.",
            "RestrictAddressFamilies=AF_UNIX",
            "PrivateNetwork=yes",
            "IPAddressDeny=any"]),
    ]
    if user:
        # A user manager holds no capabilities, so it cannot drop them: CapabilityBoundingSet=
        # makes a user unit fail (status 218). RemoveIPC= needs a system account.
        return lines
    return [*lines, "CapabilityBoundingSet=", "AmbientCapabilities=", "RemoveIPC=yes"]


def _network() -> list[str]:
    return ["# Local sockets, and IP for the cluster's PostgreSQL (a worker needs nothing else;",
            "# IPAddressAllow= could narrow it to the server's address).",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"]


def _kernel(*, gpu: bool) -> list[str]:
    lines = [
        "# Kernel and other processes: out of sight and out of reach.",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "KeyringMode=private",
    ]
    if gpu:
        return [*lines,
                "# No PrivateDevices= nor ProtectClock= (which implies a device allow-list):",
                "# embedding.device = \"cuda\" needs /dev/nvidia*."]
    return [*lines, "PrivateDevices=yes", "ProtectClock=yes"]


def _system_calls(*, jit: bool) -> list[str]:
    lines = [
        "# System calls: what a service needs, minus privileged and resource-changing ones;",
        "# anything else fails with EPERM instead of killing the daemon.",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "SystemCallErrorNumber=EPERM",
        "SystemCallArchitectures=native",
    ]
    if jit:
        return [*lines,
                "# The CLAP backend's torch (oneDNN) and numba compile code at run time into",
                "# memory that is written, then executed: W^X would make ingest fail.",
                "MemoryDenyWriteExecute=no"]
    return [*lines,
            "# W^X: the default analysis never imports numba (measured: daemon.embed.spectral).",
            "MemoryDenyWriteExecute=yes"]


def unit_path(*, user: bool) -> Path:
    """Where `install_unit` writes: the user's or the system's unit folder."""
    if user:
        config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(config_home) / "systemd" / "user" / UNIT_NAME
    return Path("/etc/systemd/system") / UNIT_NAME


def install_unit(*, user: bool, text: str, name: str = UNIT_NAME) -> Path:
    """Write the unit atomically, run ``systemctl [--user] daemon-reload`` if systemctl
    exists, and return the unit's path. Enabling is left to the user (`enable_command`).

    Raises `TraumError` when the unit folder is not writable (a system unit needs root).
    A failed daemon-reload (no systemd running, e.g. in a container) is only logged.
    """
    target = unit_path(user=user).with_name(name)
    try:
        write_text_atomic(target, text)
        target.chmod(0o644)  # what systemd's own units have, whatever the installer's umask
    except OSError as exc:
        hint = "" if user else " (a system unit needs root; or use --user)"
        raise TraumError(f"cannot write {target}: {exc.strerror or exc}{hint}") from exc
    systemctl = shutil.which("systemctl")
    if systemctl:
        scope = ["--user"] if user else []
        done = subprocess.run([systemctl, *scope, "daemon-reload"], check=False,
                              capture_output=True, text=True)
        if done.returncode != 0:
            log.warning("systemctl daemon-reload failed: %s", done.stderr.strip())
    return target


def enable_command(*, user: bool, name: str = UNIT_NAME) -> str:
    """The command that enables and starts the installed unit `name`."""
    return f"systemctl {'--user ' if user else ''}enable --now {name}"


def _split_exe(exe: str) -> list[str]:
    return [exe] if os.path.isfile(exe) else shlex.split(exe)


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _command(*args: str) -> str:
    # "$" would be expanded as an environment variable in ExecStart=.
    return " ".join(_quote(arg).replace("$", "$$") for arg in args)


def _escape(value: str) -> str:
    """A single-valued setting only needs "%" escaped: it starts a specifier."""
    return value.replace("%", "%%")


def _quote(value: str) -> str:
    """One word of a list setting or command line: spaces split words, quotes group."""
    value = _escape(value)
    if any(ch in value for ch in ' \t"\'\\'):
        value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value
