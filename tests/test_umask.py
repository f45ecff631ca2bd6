"""Outputs follow the umask: every file a render writes is ``0666 & ~umask`` and every folder
``0777 & ~umask``, so a unit's ``UMask=`` (or a user's shell) decides who may read a track.

A temp file from `mkstemp` is 0600 and a rename keeps the mode; `daemon.fsutil.atomic_output`
sets the mode ``open()`` would have given before it renames. The render runs in a real
``traum render`` process under each umask, with every export.
"""

from __future__ import annotations

import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon import REPO, kit_files, write_tree

EXPORTS = "png,lanes,midi,dawproject"


def traum_under_umask(root: Path, umask: int, *args: str) -> subprocess.CompletedProcess:
    command = shlex.join([sys.executable, "-m", "daemon", "--config",
                          str(root / "config.toml"), *args])
    return subprocess.run(["sh", "-c", f"umask {umask:03o} && exec {command}"],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace whose library holds one small synthesised kit."""
    root = tmp_path_factory.mktemp("umask")
    (root / "config.toml").write_text(
        f'[paths]\ninbox = "{root / "inbox"}"\nlibrary = "{root / "library"}"\n'
        f'requests = "{root / "requests"}"\nrules = "{REPO / "rules"}"\n')
    write_tree(root / "inbox" / "Basics", kit_files("real", 40))
    done = traum_under_umask(root, 0o022, "ingest")
    assert done.returncode == 0, done.stderr
    return root


@pytest.mark.parametrize("umask", [0o027, 0o002], ids=["027", "002"])
def test_every_output_and_export_follows_the_umask(library: Path, umask: int) -> None:
    wav = library / f"out-{umask:03o}" / "track.wav"
    done = traum_under_umask(library, umask, "render", "minimal techno 126 bpm", "-o",
                             str(wav), "--export", EXPORTS)
    assert done.returncode == 0, done.stderr
    lanes = wav.with_suffix(".lanes")
    files = [wav.with_suffix(suffix) for suffix in (".wav", ".json", ".png", ".mid",
                                                    ".dawproject")]
    files += sorted(lanes.glob("*.wav"))
    assert len(files) > 5 and all(path.is_file() for path in files)
    modes = {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in files}
    assert modes == {path.name: oct(0o666 & ~umask) for path in files}
    for folder in (wav.parent, lanes):
        assert oct(stat.S_IMODE(folder.stat().st_mode)) == oct(0o777 & ~umask), folder
