"""`traum fix`: corrections stored with the source "user", shown with a * by `traum stems`,
learnt by the category classifier, weighed by the kit pass and kept by every re-analysis."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from kit_helpers import make_engine

from daemon.cli import main
from daemon.config import load_config
from daemon.ingest.analyse import ANALYSIS_VERSION
from daemon.ingest.classify import CategoryClassifier
from daemon.store import queries
from daemon.synth import synthesize_kit, write_kit_folder
from daemon.work import Engine

KIT = "Night Kit"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """A library holding one anonymous kit (no name says a category, tempo or key)."""
    root = tmp_path_factory.mktemp("corrections")
    engine = make_engine(root)
    samples = synthesize_kit(bpm=126.0, key="D minor", seed=6, bars=2, names="anonymous")
    write_kit_folder(samples, engine.config.paths.inbox / KIT)
    engine.ingest(engine.config.paths.inbox / KIT)
    engine.close()
    return root


@pytest.fixture
def config(ingested, tmp_path) -> str:
    """A copy of the ingested library of its own; returns its config file."""
    shutil.copytree(ingested, tmp_path / "lib")
    return str(tmp_path / "lib" / "config.toml")


def stems(config: str, capsys) -> dict[int, dict]:
    assert main(["stems", "--json", "--config", config]) == 0
    return {row["id"]: row for row in json.loads(capsys.readouterr().out)}


def first(rows: dict[int, dict], **where) -> dict:
    return next(row for row in rows.values()
                if all(row[name] == value for name, value in where.items()))


def test_a_category_correction_is_marked_and_learnt(config, capsys):
    rows = stems(config, capsys)
    drum = first(rows, kind="loop", category="drum_loop")
    assert all(not row["overrides"] for row in rows.values())
    assert main(["fix", str(drum["id"]), "--category", "perc", "--config", config]) == 0
    assert f"stem {drum['id']}" in capsys.readouterr().out
    fixed = stems(config, capsys)[drum["id"]]
    assert (fixed["category"], fixed["category_source"], fixed["category_confidence"]) == (
        "perc", "user", 1.0)
    assert fixed["overrides"] == ["category"]
    assert main(["stems", "--config", config]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.split()[0] == str(drum["id"]))
    assert "perc*" in line
    # The anonymous kit named nothing: the correction is the classifier's one example.
    engine = Engine(load_config(config))
    assert CategoryClassifier.load(engine.classifier_path()).example_count == 1


def test_a_kit_tempo_correction_reaches_its_loops_only(config, capsys):
    assert main(["fix", "--kit", KIT, "--bpm", "63", "--config", config]) == 0
    capsys.readouterr()
    rows = stems(config, capsys)
    for row in rows.values():
        if row["kind"] == "loop":
            assert (row["bpm"], row["bpm_source"], row["overrides"]) == (63.0, "user", ["bpm"])
        else:
            assert (row["bpm"], row["overrides"]) == (None, [])
    assert main(["stems", "--config", config]) == 0
    assert "63.0*" in capsys.readouterr().out


def test_a_key_correction_of_one_stem_leads_its_kit(config, capsys):
    rows = stems(config, capsys)
    tonal = [row for row in rows.values() if row["key"] is not None]
    assert {row["key"] for row in tonal} == {"D minor"}
    assert main(["fix", str(tonal[0]["id"]), "--key", "Gm", "--config", config]) == 0
    capsys.readouterr()
    after = stems(config, capsys)
    assert after[tonal[0]["id"]]["key_source"] == "user"
    assert after[tonal[0]["id"]]["key"] == "G minor"
    # The user's key is now the kit's: the other stems follow it where their chroma allows,
    # or where they read a close relative of it (D minor is a fifth away, A# major its
    # relative; then still to be checked by ear), else keep their own reading, marked for
    # checking by ear.
    for row in (after[row["id"]] for row in tonal[1:]):
        followed = (row["key"], row["key_source"], row["key_trusted"]) == ("G minor", "kit",
                                                                          True)
        related = ((row["key"], row["key_source"], row["key_trusted"]) == ("G minor", "kit",
                                                                          False)
                   and row["key_reason"].endswith("a close relative"))
        doubted = (not row["key_trusted"] and row["key_source"] == "audio"
                   and "disagrees with its kit's key G minor" in row["key_reason"])
        assert followed or related or doubted, (row["key"], row["key_reason"])


@pytest.mark.parametrize(("arguments", "message"), [
    (["--bpm", "120"], "is a one-shot"),
    (["--key", "Am"], "carries no key"),
    (["--key", "H"], "is no key"),
    (["--bpm", "900"], "must be between"),
    ([], "say what to correct"),
])
def test_corrections_that_cannot_apply_are_refused(config, capsys, arguments, message):
    rows = stems(config, capsys)
    kick = first(rows, kind="oneshot", category="kick")
    assert main(["fix", str(kick["id"]), *arguments, "--config", config]) == 1
    assert message in capsys.readouterr().err
    assert stems(config, capsys) == rows


def test_unknown_stems_and_kits_are_refused(config, capsys):
    assert main(["fix", "99999", "--category", "pad", "--config", config]) == 1
    assert "no stem 99999" in capsys.readouterr().err
    assert main(["fix", "--kit", "Nope", "--category", "pad", "--config", config]) == 1
    assert "no kit 'Nope'" in capsys.readouterr().err
    assert main(["fix", "1", "--kit", KIT, "--category", "pad", "--config", config]) == 1


def test_reanalysis_keeps_corrections_ids_and_embeddings(config, capsys):
    rows = stems(config, capsys)
    loop = first(rows, kind="loop", category="bass")
    drum = first(rows, kind="loop", category="drum_loop")
    assert drum["key"] is None  # drums carry no key
    assert main(["fix", str(loop["id"]), "--category", "lead", "--bpm", "63", "--config",
                 config]) == 0
    assert main(["fix", str(drum["id"]), "--category", "bass", "--config", config]) == 0
    capsys.readouterr()
    library = load_config(config).paths.library
    before = {stem.id: stem for stem in queries.list_stems(library)}
    assert main(["reanalyse", "--kit", KIT, "--config", config]) == 0
    assert f"re-analysed {len(rows)} stems" in capsys.readouterr().out
    after = {stem.id: stem for stem in queries.list_stems(library)}
    assert after.keys() == before.keys()
    assert all(stem.analysis_version == ANALYSIS_VERSION for stem in after.values())
    assert all((stem.embedding == before[stem.id].embedding).all() for stem in after.values())
    kept = after[loop["id"]]
    assert (kept.category, kept.bpm, kept.overrides) == ("lead", 63.0, ("category", "bpm"))
    # Analysed as the bass the user says it is: a tonal category, so it now has a key.
    assert after[drum["id"]].category == "bass" and after[drum["id"]].key is not None
