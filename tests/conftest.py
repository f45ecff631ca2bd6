"""Shared fixtures: a synthesised construction kit with known ground truth.

The kit (`daemon.synth`) is 128 BPM, A minor, seed 1, 4-bar loops at 44.1 kHz: 18 samples
(kicks, snare, clap, hats, ride, perc, drum loop, three bass loops, pad, arp, atmo, two FX).
`ground_truth(synth_kit)` gives name, category, kind, bpm, key and tags for each.
Samples are synthesised once per session; folders and zips are written per test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.synth import KitSample, synthesize_kit, write_kit_folder, write_kit_zip

_KIT_SPEC = {"bpm": 128.0, "key": "A minor", "seed": 1}
#: Folder / zip stem the fixtures write, pack style.
KIT_NAME = "TE Test Kit 128 BPM Am"


@pytest.fixture(scope="session")
def kit_spec() -> dict:
    """The arguments `synth_kit` was made with: ``{"bpm": 128.0, "key": "A minor", "seed": 1}``."""
    return dict(_KIT_SPEC)


@pytest.fixture(scope="session")
def synth_kit() -> list[KitSample]:
    """The kit's samples with descriptive names (``Drums/Kicks/TE_Kick_Punchy_01.wav``)."""
    return synthesize_kit(**_KIT_SPEC)


@pytest.fixture(scope="session")
def anonymous_kit() -> list[KitSample]:
    """The same audio as `synth_kit`, in the same order, named ``sample_NN.wav``."""
    return synthesize_kit(**_KIT_SPEC, names="anonymous")


@pytest.fixture
def kit_folder(tmp_path: Path, synth_kit: list[KitSample]) -> Path:
    """``tmp_path/kits/TE Test Kit 128 BPM Am/`` holding the kit as 24-bit WAVs in sub-folders."""
    folder = tmp_path / "kits" / KIT_NAME
    write_kit_folder(synth_kit, folder)
    return folder


@pytest.fixture
def kit_zip(tmp_path: Path, synth_kit: list[KitSample]) -> Path:
    """``tmp_path/kits/TE Test Kit 128 BPM Am.zip`` with the kit's names as entry paths."""
    return write_kit_zip(synth_kit, tmp_path / "kits" / f"{KIT_NAME}.zip")


@pytest.fixture
def anonymous_kit_folder(tmp_path: Path, anonymous_kit: list[KitSample]) -> Path:
    """``tmp_path/kits/Untitled Kit/`` holding the anonymous kit (flat, ``sample_NN.wav``)."""
    folder = tmp_path / "kits" / "Untitled Kit"
    write_kit_folder(anonymous_kit, folder)
    return folder


@pytest.fixture(scope="session")
def trained_classifier() -> Path:
    """The category classifier the package ships (`daemon.ingest.corpus.BASE_CORPUS`):
    ready to load, nothing to train."""
    from daemon.ingest.corpus import BASE_CORPUS

    return BASE_CORPUS


@pytest.fixture
def seed_library():
    """Return a function that makes a fresh `library/` folder. A fresh library needs no
    classifier of its own any more (the shipped one is used until the user's named stems
    retrain it), so there is nothing to copy into it."""

    def seed(library: Path) -> Path:
        library.mkdir(parents=True, exist_ok=True)
        return library

    return seed


LMMS_SAMPLES = Path("/usr/share/lmms/samples")


def require_system_path(path: Path | str, package: str) -> Path:
    """`path` from a Debian package: required on CI (the test fails), skipped elsewhere."""
    path = Path(path)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing on CI: install Debian's {package}")
        pytest.skip(f"{path} not found (Debian package {package})")
    return path


@pytest.fixture(scope="session")
def lmms_samples() -> Path:
    """Debian's lmms-common recorded samples: required on CI, skipped with a reason elsewhere."""
    return require_system_path(LMMS_SAMPLES, "lmms-common")


@pytest.fixture
def postgres_url() -> str:
    """A new, empty PostgreSQL database for this test (see `pg_helpers`), dropped afterwards."""
    from pg_helpers import fresh_database

    with fresh_database() as url:
        yield url
