"""config.toml loading: discovery, defaults, path resolution and every class of error."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import ensure_folders, find_config, load_config
from daemon.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_matches_the_defaults(tmp_path):
    shipped = load_config(ROOT / "config.toml")
    defaults = load_config(write(tmp_path, ""))
    assert shipped.render == defaults.render
    assert shipped.ingest == defaults.ingest
    assert shipped.daemon == defaults.daemon
    assert shipped.embedding == defaults.embedding


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    sub = tmp_path / "conf"
    sub.mkdir()
    path = write(sub, '[paths]\ninbox = "drop"\nlibrary = "/abs/lib"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(path)
    assert config.paths.inbox == sub / "drop"
    assert config.paths.library == Path("/abs/lib")
    assert config.paths.database == Path("/abs/lib/stems.db")


def test_discovery_prefers_explicit_then_env_then_cwd(tmp_path, monkeypatch):
    env_file = write(tmp_path, "")
    other = tmp_path / "other.toml"
    other.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAUM_CONFIG", str(other))
    assert find_config(env_file) == env_file.resolve()
    assert find_config() == other.resolve()
    monkeypatch.delenv("TRAUM_CONFIG")
    assert find_config() == env_file.resolve()


def test_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_all_problems_are_reported_at_once(tmp_path):
    path = write(tmp_path, """
[render]
target_lufs = 3
sidechain = "yes"
sample_rate = 22050
[ingest]
wokers = 2
[daemon]
log_level = "LOUD"
[colour]
x = 1
""")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "config.toml: render.target_lufs: must be between -30 and -5 (got 3)" in message
    assert "render.sidechain: must be true or false" in message
    assert "render.sample_rate: must be 44100 or 48000 (got 22050)" in message
    assert "ingest.wokers: unknown key" in message
    assert "daemon.log_level: must be one of" in message
    assert "colour: unknown key" in message
    assert len(message.splitlines()) == 6


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"ingest.workers: must be an integer \(got 'two'\)"):
        load_config(write(tmp_path, '[ingest]\nworkers = "two"\n'))


def test_toml_syntax_error_names_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"line 3, column"):
        load_config(write(tmp_path, "[render]\ntarget_lufs = -14\nsidechain = = true\n"))


def test_section_must_be_a_table(tmp_path):
    with pytest.raises(ConfigError, match="render: must be a table"):
        load_config(write(tmp_path, "render = 3\n"))


def test_clap_checkpoint_resolves_and_folders_are_created(tmp_path):
    config = load_config(write(tmp_path, '[embedding]\nclap_checkpoint = "m/clap.pt"\n'))
    assert config.embedding.clap_checkpoint == tmp_path / "m" / "clap.pt"
    ensure_folders(config.paths)
    for folder in (config.paths.inbox, config.paths.requests, config.paths.quarantine,
                   config.paths.cache, config.paths.stems):
        assert folder.is_dir()
