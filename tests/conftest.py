"""Shared fixtures: a synthesised construction kit with known ground truth.

The kit (`daemon.synth`) is 128 BPM, A minor, seed 1, 4-bar loops at 44.1 kHz: 18 samples
(kicks, snare, clap, hats, ride, perc, drum loop, three bass loops, pad, arp, atmo, two FX).
`ground_truth(synth_kit)` gives name, category, kind, bpm, key and tags for each.
Samples are synthesised once per session; folders and zips are written per test.
"""

from __future__ import annotations

import os
import shutil
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
def trained_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small bootstrap category classifier, trained once per test session.

    Every fresh library would otherwise train its own (about 10 s each); tests that run
    the real pipeline copy this file into their library cache with `seed_library`.
    """
    from daemon.ingest.classify import CLASSIFIER_FILE, bootstrap_classifier

    path = tmp_path_factory.mktemp("classifier") / CLASSIFIER_FILE
    bootstrap_classifier(kits=3).save(path)
    return path


@pytest.fixture
def seed_library(trained_classifier: Path):
    """Return a function that puts the session's classifier into `library/cache/`."""

    def seed(library: Path) -> Path:
        cache = library / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copy(trained_classifier, cache / trained_classifier.name)
        return library

    return seed


LMMS_SAMPLES = Path("/usr/share/lmms/samples")


@pytest.fixture(scope="session")
def lmms_samples() -> Path:
    """Debian's lmms-common recorded samples: required on CI, skipped with a reason elsewhere."""
    if not LMMS_SAMPLES.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{LMMS_SAMPLES} is missing on CI: install Debian's lmms-common")
        pytest.skip(f"{LMMS_SAMPLES} not found (Debian package lmms-common)")
    return LMMS_SAMPLES
