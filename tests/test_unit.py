"""The systemd unit: content, escaping, systemd-analyze verify, installation."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import Paths
from daemon.errors import TraumError
from daemon.service import unit
from daemon.service.unit import enable_command, install_unit, render_unit


def _paths(root: Path) -> Paths:
    return Paths(inbox=root / "inbox", library=root / "library",
                 requests=root / "outbox" / "requests", rules=root / "rules")


def _settings(text: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_system_unit_outside_home(tmp_path: Path) -> None:
    root = Path("/srv/traum")
    text = render_unit(user=False, exe="/opt/traum/bin/traum", config_path=root / "config.toml",
                       paths=_paths(root), stop_timeout=12.5)
    settings = _settings(text)
    assert settings["Type"] == ["notify"]
    assert settings["ExecStart"] == ["/opt/traum/bin/traum --config /srv/traum/config.toml run"]
    assert settings["ReadWritePaths"] == [
        "/srv/traum/inbox /srv/traum/library /srv/traum/outbox/requests"]
    assert settings["TimeoutStopSec"] == ["18"]  # after the daemon's own 12.5 s
    assert settings["WatchdogSec"] == ["60"]
    assert settings["ProtectHome"] == ["yes"]
    assert settings["PrivateTmp"] == ["yes"]
    assert settings["MemoryDenyWriteExecute"] == ["no"]
    assert settings["WantedBy"] == ["multi-user.target"]
    for key in ("ProtectSystem", "NoNewPrivileges", "ProtectKernelTunables",
                "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality",
                "SystemCallArchitectures", "UMask", "KillSignal", "Restart"):
        assert key in settings, key
    assert "PYTHONUNBUFFERED=1" in settings["Environment"]
    assert "# Numba compiles" in text  # the W+X exception explains itself


def test_user_unit_under_home_keeps_home_readable() -> None:
    root = Path("/home/ada/music")
    text = render_unit(user=True, exe="/home/ada/.venv/bin/python -m daemon",
                       config_path=root / "config.toml", paths=_paths(root))
    settings = _settings(text)
    assert settings["ExecStart"] == [
        "/home/ada/.venv/bin/python -m daemon --config /home/ada/music/config.toml run"]
    assert settings["ProtectHome"] == ["read-only"]
    assert settings["WantedBy"] == ["default.target"]
    assert "User" not in settings


def test_spaces_percent_and_dollar_are_escaped(tmp_path: Path) -> None:
    root = Path("/srv/my kits/100%")
    exe = tmp_path / "bin dir" / "traum"
    exe.parent.mkdir()
    exe.write_text("#!/bin/sh\n")
    text = render_unit(user=False, exe=str(exe), config_path=root / "cfg$.toml",
                       paths=_paths(root))
    settings = _settings(text)
    assert settings["ExecStart"] == [
        f'"{exe}" --config "/srv/my kits/100%%/cfg$$.toml" run']
    assert settings["ReadWritePaths"][0].startswith('"/srv/my kits/100%%/inbox" ')
    assert settings["WorkingDirectory"] == ["/srv/my kits/100%%"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    for folder in (paths.inbox, paths.library, paths.requests):
        folder.mkdir(parents=True)
    config = tmp_path / "config.toml"
    config.write_text("")
    target = tmp_path / "traum-engine.service"
    target.write_text(render_unit(user=False, exe=f"{sys.executable} -m daemon",
                                  config_path=config, paths=paths))
    done = subprocess.run(["systemd-analyze", "verify", str(target)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert str(target) not in done.stderr, done.stderr  # every complaint names the file


def test_install_user_unit_reloads_but_does_not_enable(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "systemctl.calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = install_unit(user=True, text="[Unit]\nDescription=x\n")
    assert path == tmp_path / "config" / "systemd" / "user" / "traum-engine.service"
    assert path.read_text() == "[Unit]\nDescription=x\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert calls.read_text().splitlines() == ["--user daemon-reload"]
    assert enable_command(user=True) == "systemctl --user enable --now traum-engine.service"


def test_install_into_an_unwritable_place_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setattr(unit, "unit_path", lambda *, user: blocker / "traum-engine.service")
    with pytest.raises(TraumError, match="cannot write .*needs root"):
        install_unit(user=False, text="[Unit]\n")
