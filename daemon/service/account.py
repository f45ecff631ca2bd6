"""The dedicated system account the system unit runs as, and handing it the three folders.

`traum service install` (as root) adds the account when it is missing: a system user with a
group of the same name, no login shell, and the library as its home (not created, never
logged into: it is only where ``$HOME`` points for the daemon). It then owns inbox, library
and requests; the two drop folders also become group-writable and setgid, so a producer
added to the group can drop kits and prompts as themselves.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import TraumError

DEFAULT_USER = "traum"
_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # what useradd accepts on every distribution
_DROP_MODE = stat.S_ISGID | stat.S_IRWXG  # g+rwxs: the group may drop, files keep the group


@dataclass(frozen=True)
class Account:
    """``User=`` and ``Group=`` of the system unit."""

    user: str
    group: str


def check_user_name(name: str) -> str:
    """Return `name` if it is a valid account name; raise `TraumError` otherwise."""
    if not _NAME.fullmatch(name):
        raise TraumError(f"{name!r} is not a usable account name (lower-case letters, digits, "
                         "'_' and '-', starting with a letter or '_', at most 32)")
    return name


def service_account(name: str) -> Account:
    """The account a unit for user `name` runs as: an existing user with its primary group,
    or the user and same-named group that `ensure_account` would create."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return Account(user=name, group=name)
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    return Account(user=name, group=group)


def ensure_account(name: str, *, home: Path) -> tuple[Account, bool]:
    """Add system user `name` unless it exists; return its `Account` and whether it was added.

    Raises `TraumError` when not run as root, when useradd is missing or fails.
    """
    check_user_name(name)
    try:
        pwd.getpwnam(name)
        return service_account(name), False
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise TraumError(f"account {name!r} does not exist and only root can add it: "
                         "run the install with sudo, or use --user")
    useradd = shutil.which("useradd")
    if useradd is None:
        raise TraumError(f"account {name!r} does not exist and useradd is not installed: "
                         "add a system user by hand, then install again")
    shell = shutil.which("nologin") or "/bin/false"
    done = subprocess.run([useradd, "--system", "--user-group", "--no-create-home",
                           "--home-dir", str(home), "--shell", shell,
                           "--comment", "Traum-Engine daemon", name],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise TraumError(f"useradd {name} failed: {done.stderr.strip() or done.returncode}")
    return service_account(name), True


def hand_over(account: Account, *, owned: Iterable[Path], drop: Iterable[Path]) -> int:
    """Give every entry under the `owned` folders to `account` (symlinks themselves, never
    their targets) and make the `drop` folders group-writable and setgid.

    Returns how many entries changed owner. Raises `TraumError` naming the first entry
    that cannot be changed.
    """
    entry = pwd.getpwnam(account.user)  # account.group is this entry's primary group
    changed = 0
    for folder in owned:
        for path in _walk(folder):
            changed += _chown(path, entry.pw_uid, entry.pw_gid)
    for folder in drop:
        try:
            folder.chmod(stat.S_IMODE(folder.stat().st_mode) | _DROP_MODE)
        except OSError as exc:
            raise TraumError(f"cannot open {folder} to group {account.group}: "
                             f"{exc.strerror or exc}") from exc
    return changed


def _walk(folder: Path) -> Iterable[Path]:
    yield folder
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            yield Path(root) / name


def _chown(path: Path, uid: int, gid: int) -> int:
    try:
        info = path.lstat()
        if (info.st_uid, info.st_gid) == (uid, gid):
            return 0
        os.chown(path, uid, gid, follow_symlinks=False)
    except OSError as exc:
        raise TraumError(f"cannot give {path} to uid {uid}: {exc.strerror or exc}") from exc
    return 1
