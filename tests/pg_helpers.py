"""A real PostgreSQL for the tests: the server CI started, or a throwaway one started here.

`server_url()` is ``$TRAUM_TEST_DATABASE_URL`` when set (``.ci/run`` starts a cluster and sets
it), else the URL of a cluster this process starts with ``.ci/start-postgres`` and stops at
exit. Without PostgreSQL installed the tests that need it skip with that reason, and fail on CI.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START = ROOT / ".ci" / "start-postgres"
_STARTED: dict[str, str] = {}


def server_url() -> str:
    """The URL of a running PostgreSQL server whose user may create databases."""
    given = os.environ.get("TRAUM_TEST_DATABASE_URL")
    if given:
        return given
    if "url" not in _STARTED:
        _STARTED["url"] = _start_throwaway()
    return _STARTED["url"]


@contextmanager
def fresh_database():
    """Yield the URL of a new, empty database on the test server; drop it afterwards."""
    import psycopg

    base = server_url()
    name = f"traum_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start_throwaway() -> str:
    url, folder = start_private_server()
    atexit.register(stop_server, folder, remove=True)
    return url


def start_private_server(folder: Path | None = None, port: int | None = None) -> tuple[str, Path]:
    """Start a PostgreSQL server of its own (a new one, or the one in `folder` again, on
    `port`); return its URL and folder. For tests that stop the server: never the shared one."""
    installed = list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if shutil.which("initdb") is None and not installed:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is missing on CI: install Debian's postgresql")
        pytest.skip("PostgreSQL not installed (Debian package postgresql): cluster tests skipped")
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="traum-pg-", dir="/tmp"))
        folder.chmod(0o755)  # the server may run as another account (initdb refuses root)
    done = subprocess.run([str(START), str(folder), str(port or _free_port())],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"cannot start a throwaway PostgreSQL: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1], folder


def stop_server(folder: Path, *, remove: bool = False) -> None:
    """Stop the server of `folder` at once (and delete its data when `remove`)."""
    pg_ctl = shutil.which("pg_ctl") or sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    owner = folder.owner()
    command = [str(pg_ctl), "-D", str(folder / "data"), "-m", "immediate", "-w", "stop"]
    if os.geteuid() == 0 and owner != "root":
        command = ["runuser", "-u", owner, "--", *command]
    subprocess.run(command, capture_output=True, check=False)
    if remove:
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
