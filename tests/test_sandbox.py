"""The hardened unit still works: a real ingest and render inside an emulation of its sandbox.

Where PID 1 is systemd, ``systemd-run`` could apply the unit itself; this machine (and CI's
container) has no systemd running, so the sandbox is rebuilt from the unit's own lines:

- its system-call filter, address families and W^X by tests/sandboxed.py (libseccomp, the
  same rules systemd 252 loads, from the first instruction of ``traum``);
- as root, with ``unshare``: no network (PrivateNetwork=), /proc showing only the process's
  own processes (ProtectProc=invisible, ProcSubset=pid), and every mount read-only except
  the three folders (ProtectSystem=strict, ReadWritePaths=).

What is not emulated (devices, user namespace, capabilities) cannot stop a process that
never uses it: the daemon opens no device and needs no privilege.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.commands.common import traum_executable
from daemon.config import load_config
from daemon.service.account import Account
from daemon.service.unit import UnitSpec, render_unit

HERE = Path(__file__).resolve().parent
NAMESPACES = os.geteuid() == 0 and shutil.which("unshare") is not None
# Remount every file system read-only but the API trees, then bind the three folders back
# writable; prove it by failing to write beside the config; then start the command.
_SANDBOX = r"""
set -e
mount -t proc -o remount,hidepid=invisible,subset=pid proc /proc
findmnt -rno TARGET | while read -r target; do
  case "$target" in /dev|/dev/*|/proc|/proc/*|/sys|/sys/*) ;;
    *) mount -o remount,bind,ro "$target" 2>/dev/null || true ;; esac
done
for folder in "$INBOX" "$LIBRARY" "$REQUESTS"; do
  mount --bind "$folder" "$folder"; mount -o remount,bind,rw "$folder"
done
if touch "$ROOT/write-probe" 2>/dev/null; then echo "not read-only: $ROOT" >&2; exit 97; fi
exec "$@"
"""

pytestmark = [
    pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                       reason="needs systemd-analyze to expand the system-call groups"),
    pytest.mark.skipif(ctypes.util.find_library("seccomp") is None, reason="needs libseccomp"),
]


def _sandboxed(unit: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    paths = load_config(config).paths
    command = [sys.executable, str(HERE / "sandboxed.py"), str(unit), "--",
               *traum_executable().split(), "--config", str(config), *args]
    env = dict(os.environ, ROOT=str(config.parent), INBOX=str(paths.inbox),
               LIBRARY=str(paths.library), REQUESTS=str(paths.requests))
    if NAMESPACES:
        command = ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc",
                   "sh", "-c", _SANDBOX, "sandbox", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env,
                          cwd=config.parent)


def test_ingest_and_render_inside_the_units_sandbox(tmp_path: Path, kit_folder: Path,
                                                    seed_library) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nrules = "{HERE.parent / "rules"}"\n')
    paths = load_config(config).paths
    for folder in (paths.inbox, paths.library, paths.requests):
        folder.mkdir(parents=True)
    seed_library(paths.library)
    shutil.copytree(kit_folder, paths.inbox / kit_folder.name)
    unit = tmp_path / "traum-engine.service"
    unit.write_text(render_unit(UnitSpec(exe=traum_executable(), config_path=config,
                                         paths=paths, account=Account("traum", "traum"))))
    assert "MemoryDenyWriteExecute=yes" in unit.read_text()

    done = _sandboxed(unit, config, "ingest")
    assert done.returncode == 0, done.stderr
    assert len(list(paths.stems.rglob("*.wav"))) >= 10
    assert not (tmp_path / "write-probe").exists()
    done = _sandboxed(unit, config, "render", "driving techno 128 bpm", "--seed", "7")
    assert done.returncode == 0, done.stderr
    assert (paths.requests / "driving-techno-128-bpm.wav").stat().st_size > 100_000
