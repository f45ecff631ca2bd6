"""Kit profiles read through a `ProfileCache` (daemon.kits.refresh): a process that reads the
library again reads, computes and infers only what changed, found from the kits' revisions
(schema v10) without reading their stems."""

from __future__ import annotations

from pathlib import Path

from stored_kits import kit_samples, make_engine, store_kit

from daemon.kits.refresh import ProfileCache, load_library
from daemon.store import queries, revisions
from daemon.store.models import Kit

ROOT = Path(__file__).resolve().parents[1]


def test_only_the_kit_whose_stems_changed_is_computed_again(tmp_path):
    engine = make_engine(tmp_path)
    store_kit(engine, "Warehouse Techno", kit_samples(138.0, "A minor", 1))
    house = store_kit(engine, "Deep House Tools", kit_samples(122.0, "C minor", 2))
    heard: list[str] = []

    def hear(stems):
        heard.append(stems[0].kit)
        return {}

    library, rules, cache = engine.config.paths.library, ROOT / "rules", ProfileCache()
    first = load_library(library, rules, hear=hear, cache=cache)
    assert sorted(heard) == ["Deep House Tools", "Warehouse Techno"]
    assert load_library(library, rules, hear=hear, cache=cache) is first  # nothing changed
    techno = first.profile("Warehouse Techno")

    revisions.update_stems({house[0]: {"category": "perc"}})  # as `traum fix` writes it
    again = load_library(library, rules, hear=hear, cache=cache)
    assert heard[2:] == ["Deep House Tools"]  # the other kit is neither heard nor re-read
    assert again.profile("Warehouse Techno") is techno
    assert again.profile("Deep House Tools").categories["perc"] >= 1
    # A new process (an empty cache) reads the stored profiles: nothing is computed.
    fresh = load_library(library, rules, hear=hear, cache=ProfileCache())
    assert len(heard) == 3 and fresh.profiles == again.profiles

    Kit.delete().where(Kit.name == "Deep House Tools").execute()
    assert [p.kit for p in load_library(library, rules, hear=hear, cache=cache).profiles] == [
        "Warehouse Techno"]
    assert set(cache.profiles) == {kit.id for kit in queries.complete_kits()}
    engine.close()


def test_status_lists_the_profiles_of_a_small_library_and_counts_a_large_one(
        tmp_path, monkeypatch, capsys):
    from daemon import work
    from daemon.cli import main

    engine = make_engine(tmp_path)
    store_kit(engine, "Warehouse Techno", kit_samples(138.0, "A minor", 1))
    config = ["--config", str(tmp_path / "config.toml")]
    assert main([*config, "status"]) == 0
    assert "Warehouse Techno" in capsys.readouterr().out
    monkeypatch.setattr(work, "STATUS_KITS", 0)
    assert engine.status()["kit_profiles"] == []
    assert main([*config, "status"]) == 0
    out = capsys.readouterr().out
    assert "kits: 1 (traum kits lists their profiles)" in out and "Warehouse" not in out
    engine.close()
