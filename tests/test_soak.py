"""The soak of bench/soak.py as a test: 200 prompts and 20 kits through a running daemon.

Marked slow (tens of minutes): ``make test`` skips it, ``make test-all`` and ``make bench``
run it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


@pytest.mark.slow
def test_soak_keeps_memory_fds_and_threads_flat(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    soak = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = soak  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(soak)
    result = soak.run_soak(tmp_path, prompts=200, kits=20, warmup=10, timeout=1800.0)
    assert result.problems() == [], soak.report(result)
