"""Run a command under the system-call part of the unit's sandbox, as systemd would.

Usage: ``python tests/sandboxed.py UNIT_FILE -- COMMAND...``

Reads ``SystemCallFilter=``, ``SystemCallErrorNumber=``, ``RestrictAddressFamilies=`` and
``MemoryDenyWriteExecute=`` from the unit, builds the same seccomp filter systemd 252 builds
(the groups expanded by ``systemd-analyze syscall-filter``; W^X as four argument rules) with
libseccomp, loads it (which also sets no_new_privs) and execs COMMAND, so the command runs
under the filter from its first instruction, as ExecStart= does. Used by tests/test_sandbox.py
on machines whose PID 1 is not systemd; it needs libseccomp and systemd-analyze.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

_ALLOW = 0x7FFF0000  # SCMP_ACT_ALLOW
_MASKED_EQ = 7  # SCMP_CMP_MASKED_EQ
_NE = 1  # SCMP_CMP_NE
_PROT_WRITE, _PROT_EXEC, _SHM_EXEC = 0x2, 0x4, 0o100000
_MAX_SYSCALL = 1024  # above every system call number of today's architectures


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _errno_action(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)  # SCMP_ACT_ERRNO(number)


def read_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def expand(group: str, seen: set[str] | None = None) -> set[str]:
    """The system calls of `group` (``@name`` or a call), nested groups resolved."""
    if not group.startswith("@"):
        return {group}
    seen = set() if seen is None else seen
    seen.add(group)
    listing = subprocess.run(["systemd-analyze", "syscall-filter", group], check=True,
                             capture_output=True, text=True).stdout.splitlines()[1:]
    calls: set[str] = set()
    for line in (entry.strip() for entry in listing):
        if line and not line.startswith("#") and line not in seen:
            calls |= expand(line, seen)
    return calls


def allowed_calls(filters: list[str]) -> set[str]:
    """SystemCallFilter= lines in order: the first is an allow-list, ``~`` lines remove."""
    calls: set[str] = set()
    for line in filters:
        deny = line.startswith("~")
        names = set().union(*(expand(word) for word in line.lstrip("~").split()))
        calls = calls - names if deny else calls | names
    return calls


def load_filter(settings: dict[str, list[str]]) -> None:
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_char_p
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    denied = _errno_action(getattr(errno, settings["SystemCallErrorNumber"][0]))
    allowed = allowed_calls(settings["SystemCallFilter"])
    # Allow by default and deny every other call the native architecture knows: then the
    # argument tests below can refuse some uses of an allowed call.
    ctx = lib.seccomp_init(_ALLOW)
    for number in range(_MAX_SYSCALL):
        name = lib.seccomp_syscall_resolve_num_arch(0, number)  # 0: the native architecture
        if name and name.decode() not in allowed:
            _add(lib, ctx, denied, number)
    if settings["RestrictAddressFamilies"] == ["AF_UNIX"]:
        _add(lib, ctx, _errno_action(errno.EAFNOSUPPORT), _resolve(lib, "socket"),
             _ArgCmp(0, _NE, socket.AF_UNIX, 0))
    if settings["MemoryDenyWriteExecute"] == ["yes"]:
        wx = _PROT_WRITE | _PROT_EXEC
        for name, mask in (("mmap", wx), ("mprotect", _PROT_EXEC),
                           ("pkey_mprotect", _PROT_EXEC), ("shmat", _SHM_EXEC)):
            _add(lib, ctx, _errno_action(errno.EPERM), _resolve(lib, name),
                 _ArgCmp(2, _MASKED_EQ, mask, mask))
    if lib.seccomp_load(ctx) != 0:
        raise OSError("seccomp_load failed")


def _resolve(lib: ctypes.CDLL, name: str) -> int:
    return lib.seccomp_syscall_resolve_name(name.encode())


def _add(lib: ctypes.CDLL, ctx: int, action: int, number: int, *tests: _ArgCmp) -> None:
    array = (_ArgCmp * max(1, len(tests)))(*tests)
    result = lib.seccomp_rule_add_array(ctx, action, number, len(tests), array)
    if result != 0:
        raise OSError(-result, f"seccomp rule for syscall {number}")


def main(argv: list[str]) -> None:
    unit, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    load_filter(read_settings(Path(unit)))
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
