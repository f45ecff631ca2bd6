"""No traceback reaches a user unless --debug: the CLI's last error boundary."""

from __future__ import annotations

from pathlib import Path

import pytest
from library_helpers import make_library

from daemon import cli
from daemon.commands import care

ROOT = Path(__file__).resolve().parents[1]


def _no_space(library: Path, *, keep: int) -> Path:
    raise OSError(28, "No space left on device", str(library / "backups" / "stems.db"))


def _bug(library: Path, *, keep: int) -> Path:
    raise KeyError("stem")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    make_library(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(f'[paths]\nrules = "{ROOT / "rules"}"\n')
    return path


def test_an_unexpected_fault_is_one_line_and_exit_1(
        config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(care, "take_library_backup", _no_space)
    assert cli.main(["--config", str(config), "backup"]) == 1
    err = capsys.readouterr().err
    target = config.parent / "library" / "backups" / "stems.db"
    assert err == (f"traum: backup failed: No space left on device: {target} "
                   "(run with --debug for details)\n")


def test_a_bug_names_its_type(config: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(care, "take_library_backup", _bug)
    assert cli.main(["--config", str(config), "backup"]) == 1
    assert capsys.readouterr().err == ("traum: backup failed: KeyError: 'stem' "
                                       "(run with --debug for details)\n")


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_prints_the_traceback(config: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture, where: str) -> None:
    monkeypatch.setattr(care, "take_library_backup", _no_space)
    args = ["--debug", "--config", str(config), "backup"] if where == "before" else \
        ["--config", str(config), "backup", "--debug"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "in _no_space" in err
    assert err.endswith("traum: backup failed: No space left on device: "
                        f"{config.parent / 'library' / 'backups' / 'stems.db'}\n")


def test_a_traum_error_stays_one_line_and_debug_shows_its_cause(
        config: Path, capsys: pytest.CaptureFixture) -> None:
    (config.parent / "library" / "stems.db").write_bytes(b"not a database" * 100)
    assert cli.main(["--config", str(config), "backup"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "damaged, not backed up" in err
    assert cli.main(["--config", str(config), "backup", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "sqlite3.DatabaseError: file is not a database" in err
    assert err.splitlines()[-1].startswith("traum: ")
