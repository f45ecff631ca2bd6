"""The systemd unit for `traum run`: rendered from the config, installed on request.

The unit is hardened the way systemd.exec(5) suggests for a daemon that only needs its
three folders: the whole file system is read-only except inbox, library and requests, no
privileges can be gained, kernel and control-group settings are out of reach and only
local sockets can be opened. ``traum service install`` writes it and reloads systemd, but
enabling it stays the user's decision.
"""

from __future__ import annotations

import grp
import logging
import math
import os
import pwd
import shlex
import shutil
import subprocess
from pathlib import Path

from daemon.config import Paths
from daemon.errors import TraumError

log = logging.getLogger("traum.unit")

UNIT_NAME = "traum-engine.service"
WATCHDOG_SECONDS = 60  # no STATUS/WATCHDOG ping for this long means the process hangs
_STOP_GRACE = 5  # systemd waits this much longer than daemon.stop_timeout before SIGKILL
_HOMES = (Path("/home"), Path("/root"), Path("/run/user"))
_TEMPS = (Path("/tmp"), Path("/var/tmp"))


def render_unit(*, user: bool, exe: str, config_path: Path, paths: Paths,
                stop_timeout: float = 20.0) -> str:
    """Return the unit file text for a ``--user`` (`user`) or a system service.

    Parameters
    ----------
    exe
        Absolute path of the ``traum`` executable, or a command that runs it such as
        ``/venv/bin/python -m daemon`` (split like a shell would, unless it is an
        existing file whose path contains spaces).
    config_path
        The config file the service runs with; its folder is the working directory.
    paths
        Folders from that config; inbox, library and requests become ReadWritePaths=.
        They must exist when the service starts (systemd refuses to start otherwise).
    stop_timeout
        ``daemon.stop_timeout``; systemd's own stop timeout is a little longer, so the
        daemon's clean exit always comes before systemd's SIGKILL.
    """
    command = _split_exe(exe)
    writable = (paths.inbox, paths.library, paths.requests)
    every = (Path(command[0]), config_path, paths.rules, *writable)
    lines = [
        "[Unit]",
        "Description=Traum-Engine generative music daemon (inbox → library, prompts → WAV)",
        "After=local-fs.target",
        "",
        "[Service]",
        "Type=notify",
        f"ExecStart={_command(*command, '--config', str(config_path), 'run')}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"WorkingDirectory={_escape(str(config_path.parent))}",
        *_account(user, config_path),
        "Restart=on-failure",
        "RestartSec=5",
        f"WatchdogSec={WATCHDOG_SECONDS}",
        f"TimeoutStopSec={math.ceil(stop_timeout) + _STOP_GRACE}",
        "KillSignal=SIGTERM",
        "# SIGTERM to the main process only, which winds down its own workers.",
        "KillMode=mixed",
        "Environment=PYTHONUNBUFFERED=1",
        "# Numba (librosa's JIT) needs a writable cache; its defaults are read-only here.",
        f"Environment={_quote('NUMBA_CACHE_DIR=' + str(paths.cache / 'numba'))}",
        "UMask=0027",
        "",
        *_hardening(writable,
                    home="read-only" if any(_under(p, _HOMES) for p in every) else "yes",
                    private_tmp=not any(_under(p, _TEMPS) for p in every)),
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
    ]
    return "\n".join(lines) + "\n"


def _hardening(writable: tuple[Path, ...], *, home: str, private_tmp: bool) -> list[str]:
    """The sandbox lines (systemd.exec(5)), with the reasons a reader of the unit needs."""
    return [
        "# Hardening: everything read-only but the three folders, no privileges, no network.",
        "ProtectSystem=strict",
        f"ReadWritePaths={' '.join(_quote(str(p)) for p in writable)}",
        "# read-only, not hidden, when the venv or the folders live under a home folder;",
        "# ReadWritePaths= above still wins over read-only.",
        f"ProtectHome={home}",
        "# no when a folder lives in /tmp: a private /tmp would hide it.",
        f"PrivateTmp={'yes' if private_tmp else 'no'}",
        "NoNewPrivileges=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectHostname=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "# Numba compiles analysis code at run time into memory that is written, then",
        "# executed; with W^X enforced llvmlite cannot make it executable and ingest fails.",
        "MemoryDenyWriteExecute=no",
        "SystemCallArchitectures=native",
        "# Local sockets only: sd_notify, the journal, multiprocessing.",
        "RestrictAddressFamilies=AF_UNIX",
        "# No PrivateDevices= nor ProtectClock= (which implies a device allow-list):",
        "# the CLAP backend with device = \"cuda\" needs /dev/nvidia*.",
    ]


def unit_path(*, user: bool) -> Path:
    """Where `install_unit` writes: the user's or the system's unit folder."""
    if user:
        config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(config_home) / "systemd" / "user" / UNIT_NAME
    return Path("/etc/systemd/system") / UNIT_NAME


def install_unit(*, user: bool, text: str) -> Path:
    """Write the unit atomically, run ``systemctl [--user] daemon-reload`` if systemctl
    exists, and return the unit's path. Enabling is left to the user (`enable_command`).

    Raises `TraumError` when the unit folder is not writable (a system unit needs root).
    A failed daemon-reload (no systemd running, e.g. in a container) is only logged.
    """
    target = unit_path(user=user)
    temp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(text, encoding="utf-8")
        temp.chmod(0o644)
        os.replace(temp, target)
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


def enable_command(*, user: bool) -> str:
    """The command that enables and starts the installed unit."""
    return f"systemctl {'--user ' if user else ''}enable --now {UNIT_NAME}"


def _account(user: bool, config_path: Path) -> list[str]:
    """A system unit runs as the owner of the config file, unless that is root."""
    if user:
        return []
    try:
        owner = pwd.getpwuid(config_path.stat().st_uid)
    except (OSError, KeyError):
        return []
    if owner.pw_uid == 0:
        return []
    try:
        group = grp.getgrgid(owner.pw_gid).gr_name
    except KeyError:
        group = str(owner.pw_gid)
    return [f"User={owner.pw_name}", f"Group={group}"]


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
