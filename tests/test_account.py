"""The system unit's account: names, lookup, creation through useradd, handing over folders."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.errors import TraumError
from daemon.service.account import (
    Account,
    check_user_name,
    ensure_account,
    hand_over,
    service_account,
)

ROOT = Path(__file__).resolve().parents[1]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")


def _fake_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, *,
               exit_code: int) -> Path:
    """Put a `name` on PATH that records its arguments and exits with `exit_code`."""
    calls = tmp_path / f"{name}.calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\necho "{name}: refused" >&2\n'
                    f"exit {exit_code}\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


@pytest.mark.parametrize("name", ["traum", "_traum", "traum-engine", "t2"])
def test_usable_names_pass(name: str) -> None:
    assert check_user_name(name) == name


@pytest.mark.parametrize("name", ["", "Traum", "2traum", "tr aum", "x" * 33, "root;rm"])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(TraumError, match="not a usable account name"):
        check_user_name(name)


def test_an_existing_user_runs_with_its_primary_group() -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    account = service_account(me)
    assert account.user == me
    assert account.group  # the group's name (or its number when it has none)


def test_a_missing_user_gets_the_group_useradd_will_create() -> None:
    assert service_account("traum-test-nobody") == Account("traum-test-nobody",
                                                            "traum-test-nobody")


def test_an_existing_user_is_not_added_again(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_tool(tmp_path, monkeypatch, "useradd", exit_code=0)
    me = pwd.getpwuid(os.getuid()).pw_name
    account, added = ensure_account(me, home=tmp_path / "library")
    assert (account.user, added) == (me, False)
    assert not calls.exists()


@as_root
def test_a_missing_user_is_added_as_a_system_account_without_login(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake useradd refuses, so the machine's accounts stay as they are; its arguments
    # show what a real one would have been asked to do.
    calls = _fake_tool(tmp_path, monkeypatch, "useradd", exit_code=9)
    with pytest.raises(TraumError, match="useradd traum-test-nobody failed: useradd: refused"):
        ensure_account("traum-test-nobody", home=tmp_path / "library")
    args = calls.read_text().split()
    assert args[:3] == ["--system", "--user-group", "--no-create-home"]
    assert args[args.index("--home-dir") + 1] == str(tmp_path / "library")
    assert args[args.index("--shell") + 1].endswith(("nologin", "false"))
    assert args[-1] == "traum-test-nobody"


def test_adding_an_account_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_tool(tmp_path, monkeypatch, "useradd", exit_code=0)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # as a user runs it, also under root
    with pytest.raises(TraumError, match="only root can add it: .*or use --user"):
        ensure_account("traum-test-nobody", home=tmp_path / "library")
    assert not calls.exists()


@as_root
def test_hand_over_gives_every_entry_and_opens_the_drop_folders(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    inbox, library = tmp_path / "inbox", tmp_path / "library"
    (library / "stems" / "Kit").mkdir(parents=True)
    (library / "stems" / "Kit" / "a.wav").write_bytes(b"RIFF")
    (library / "link").symlink_to("/etc/hostname")  # the link changes owner, not its target
    inbox.mkdir(mode=0o755)
    account = service_account("nobody")
    changed = hand_over(account, owned=(inbox, library), drop=(inbox,))
    assert changed == 6
    for path in (inbox, library, library / "stems", library / "stems" / "Kit",
                 library / "stems" / "Kit" / "a.wav", library / "link"):
        assert path.lstat().st_uid == nobody.pw_uid, path
        assert path.lstat().st_gid == nobody.pw_gid, path
    assert Path("/etc/hostname").stat().st_uid == 0
    assert stat.S_IMODE(inbox.stat().st_mode) == 0o2775
    assert stat.S_IMODE(library.stat().st_mode) & stat.S_ISGID == 0
    assert hand_over(account, owned=(inbox, library), drop=()) == 0  # idempotent


_ISOLATED_INSTALL = r"""
set -e
mount --bind "$ETC" /etc
"$@"
getent passwd traum
stat -c '%U:%G %a %n' "$LIBRARY" "$LIBRARY/stems/Kit/a.wav" "$INBOX" "$REQUESTS" \
    /etc/systemd/system/traum-engine.service
"""


@as_root
@pytest.mark.skipif(shutil.which("unshare") is None or shutil.which("useradd") is None,
                    reason="needs unshare and useradd")
def test_install_adds_the_account_and_gives_it_the_folders(tmp_path: Path) -> None:
    # The real `traum service install`, in a mount namespace whose /etc is a copy: useradd
    # and the unit change the copy, never this machine.
    etc = tmp_path / "etc"
    shutil.copytree("/etc", etc, symlinks=True)
    shutil.rmtree(etc / "systemd" / "system", ignore_errors=True)
    if any(line.startswith("traum:") for line in (etc / "passwd").read_text().splitlines()):
        pytest.skip("this machine already has a traum account")
    root = tmp_path / "srv"
    (root / "library" / "stems" / "Kit").mkdir(parents=True)
    (root / "library" / "stems" / "Kit" / "a.wav").write_bytes(b"RIFF")
    (root / "config.toml").write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')
    env = dict(os.environ, ETC=str(etc), LIBRARY=str(root / "library"),
               INBOX=str(root / "inbox"), REQUESTS=str(root / "outbox" / "requests"))
    done = subprocess.run(["unshare", "--mount", "sh", "-c", _ISOLATED_INSTALL, "install",
                           sys.executable, "-m", "daemon", "--config", str(root / "config.toml"),
                           "service", "install"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("added account traum; it owns ")
    account = next(line for line in lines if line.startswith("traum:x:"))
    home, shell = account.split(":")[5:7]
    assert home == str(root / "library") and shell.endswith(("nologin", "false"))
    assert lines[-5:] == [f"traum:traum 755 {root / 'library'}",
                          f"traum:traum 644 {root / 'library' / 'stems' / 'Kit' / 'a.wav'}",
                          f"traum:traum 2775 {root / 'inbox'}",
                          f"traum:traum 2775 {root / 'outbox' / 'requests'}",
                          "root:root 644 /etc/systemd/system/traum-engine.service"]
    unit_text = (etc / "systemd" / "system" / "traum-engine.service").read_text()
    assert "User=traum\nGroup=traum\n" in unit_text
