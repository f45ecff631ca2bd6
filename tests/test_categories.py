"""Category traits: rules/categories.toml loads into `CategoryTable`, every trait as shipped, its
validation, and no code naming a category the rules do not define."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.categories import CategoryTable, load_categories
from daemon.errors import RuleError
from daemon.render.conform import transient_mode
from daemon.taxonomy import CATEGORIES, PATTERN_INSTRUMENTS

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
DRUMS = {"kick", "snare", "clap", "hihat", "cymbal", "tom", "perc", "drum_loop"}


@pytest.fixture(scope="module")
def table() -> CategoryTable:
    return load_categories(RULES)


def names_where(table: CategoryTable, trait: str) -> set[str]:
    return {name for name, rule in table.items() if getattr(rule, trait)}


def test_the_file_defines_exactly_the_taxonomy_in_its_order(table):
    assert tuple(table) == CATEGORIES
    assert all(rule.name == name and rule.phrases for name, rule in table.items())
    assert set(table.kind_phrases) == {"loop", "oneshot"}


def test_shipped_boolean_traits(table):
    assert names_where(table, "tonal") == {"bass", "lead", "synth", "pad", "chord", "arp",
                                           "vocal", "atmo"}
    assert table.tonal() == names_where(table, "tonal")
    assert names_where(table, "percussive") == DRUMS
    assert names_where(table, "sustained") == {"pad", "atmo", "chord", "vocal"}
    assert names_where(table, "ducked") == {"bass", "pad", "atmo", "chord", "synth"}
    assert names_where(table, "varies") == {"lead", "arp", "synth", "perc", "tom", "vocal", "fx"}
    assert {name for name, rule in table.items() if not rule.role} == {"synth"}


def test_shipped_loudness_stand_ins_and_patterns(table):
    assert {name: rule.loudness for name, rule in table.items()} == {
        "kick": -12.0, "drum_loop": -13.0, "bass": -14.0, "snare": -17.0, "clap": -17.0,
        "hihat": -22.0, "cymbal": -24.0, "perc": -21.0, "tom": -20.0, "chord": -19.0,
        "pad": -21.0, "synth": -18.0, "lead": -17.0, "arp": -20.0, "vocal": -17.0,
        "atmo": -24.0, "fx": -22.0}
    assert {name: rule.stand_ins for name, rule in table.items() if rule.stand_ins} == {
        "kick": ("drum_loop",), "snare": ("clap",), "clap": ("snare",),
        "hihat": ("cymbal", "perc"), "cymbal": ("hihat",), "perc": ("tom", "hihat"),
        "tom": ("perc",), "bass": ("synth",), "chord": ("pad", "synth"),
        "pad": ("chord", "atmo", "synth"), "synth": ("lead", "chord", "arp"),
        "lead": ("synth", "arp"), "arp": ("synth", "lead"), "atmo": ("pad",)}
    assert {name: rule.built_from for name, rule in table.items() if rule.built_from} == {
        "drum_loop": ("kick", "hihat")}
    assert {name: rule.pattern for name, rule in table.items() if rule.pattern} == {
        "kick": "kick", "snare": "snare", "clap": "clap", "hihat": "hihat",
        "cymbal": "cymbal", "perc": "perc", "tom": "tom", "bass": "bass", "chord": "stab",
        "synth": "stab", "lead": "stab", "arp": "stab"}
    assert {rule.pattern for rule in table.values() if rule.pattern} <= set(PATTERN_INSTRUMENTS)


def test_shipped_kinds_priorities_and_tempo_ranges(table):
    assert {name for name, rule in table.items() if rule.kind == "oneshot"} == \
        DRUMS - {"drum_loop"} | {"fx"}
    assert table["drum_loop"].kind == "loop" and table["pad"].kind == "auto"
    assert table["drum_loop"].priority == 100 and table["synth"].priority == 40
    assert all(rule.bpm_range == (100.0, 160.0) for rule in table.values())


def test_transient_mode_follows_the_traits(table):
    modes = {name: transient_mode(rule) for name, rule in table.items()}
    assert {name for name, mode in modes.items() if mode == "crisp"} == DRUMS
    assert {name for name, mode in modes.items() if mode == "smooth"} == {"pad", "atmo",
                                                                          "chord", "vocal"}


def edited_rules(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    shutil.copytree(RULES, tmp_path / "rules")
    path = tmp_path / "rules" / "categories.toml"
    text = path.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return tmp_path / "rules"


def test_every_defect_is_named_by_file_and_key(tmp_path):
    rules = edited_rules(
        tmp_path,
        ('stand_ins = ["drum_loop"]', 'stand_ins = ["keys", "kick"]'),
        ('pattern = "snare"', 'pattern = "ride"'),
        ("loudness = -17.0", "loudness = 3.0"),
        ("sustained = true", "sustained = true\npercussive = true"),
        ("loudness = -22.0", ""),
        ("priority = 70", "priority = 70\nwarm = true"))
    with pytest.raises(RuleError) as caught:
        load_categories(rules)
    message = str(caught.value)
    for expected in ("categories.toml: categories.kick.stand_ins: 'keys' is not another category",
                     "categories.toml: categories.kick.stand_ins: 'kick' is not another category",
                     "categories.toml: categories.snare.pattern: must be one of",
                     "categories.toml: categories.snare.loudness: must be between -40 and -6",
                     "categories.toml: categories.vocal: cannot be both percussive and sustained",
                     "categories.toml: categories.hihat.loudness: is required",
                     "categories.toml: categories.perc.warm: unknown key"):
        assert expected in message


def test_a_missing_category_is_refused(tmp_path):
    rules = edited_rules(tmp_path, ("[categories.tom]", "[categories.toms]"))
    with pytest.raises(RuleError, match="categories.tom: is required"):
        load_categories(rules)


# -- no code names a category the rules do not define ---------------------------------------

def _names_category(node: ast.AST) -> bool:
    """`category`, `lane_category`, `region.category`, `query.category` ..."""
    if isinstance(node, ast.Name):
        return node.id.endswith("category")
    return isinstance(node, ast.Attribute) and node.attr.endswith("category")


def _strings(node: ast.AST, tables: dict[str, ast.AST]) -> Iterator[ast.Constant]:
    """String constants of a literal, a collection of them, a dict's keys, a call wrapping
    one (``frozenset({...})``), or a module-level name bound to any of these."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for element in node.elts:
            yield from _strings(element, tables)
    elif isinstance(node, ast.Dict):
        for key in node.keys:
            if key is not None:
                yield from _strings(key, tables)
    elif isinstance(node, ast.Call) and node.args:
        yield from _strings(node.args[0], tables)
    elif isinstance(node, ast.Name) and node.id in tables:
        yield from _strings(tables.pop(node.id), tables)  # popped: no endless self-reference


def category_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string the code uses as a category: compared with one
    (``==``, ``in``), looked up by one (``TABLE[category]``, ``TABLE.get(category)``) or
    passed as one (``category="fx"``)."""
    tree = ast.parse(source)
    tables = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
              for target in node.targets if isinstance(target, ast.Name)}
    tables.update({node.target.id: node.value for node in tree.body
                   if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                   and node.value is not None})
    used: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_names_category(operand) for operand in operands):
                used += [operand for operand in operands if not _names_category(operand)]
        elif isinstance(node, ast.Subscript) and _names_category(node.slice):
            used.append(node.value)
        elif isinstance(node, ast.Call):
            used += [kw.value for kw in node.keywords if kw.arg and kw.arg.endswith("category")]
            if (isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and node.args and _names_category(node.args[0])):
                used.append(node.func.value)
    return sorted({(string.lineno, string.value)
                   for value in used for string in _strings(value, dict(tables))})


@pytest.mark.parametrize("source, found", [
    ('if region.category == "pluck":\n    pass\n', [(1, "pluck")]),
    ('SUSTAINED = frozenset({"pad", "keys"})\nfade = region.category in SUSTAINED\n',
     [(1, "keys"), (1, "pad")]),
    ('GAINS = {"stab": -19.0}\ngain = GAINS.get(category, -20.0)\n', [(1, "stab")]),
    ('NOTES = {"ride": 51}\nnote = NOTES[pick.category]\n', [(1, "ride")]),
    ('query = replace(query, category="drone")\n', [(1, "drone")]),
    ('if instrument == "hihat" and "open" in words:\n    pass\n', []),
])
def test_the_scan_finds_categories_named_in_code(source, found):
    assert category_literals(source) == found


def test_no_code_names_a_category_the_rules_do_not_define(table):
    strays = [f"{path.relative_to(ROOT)}:{line}: {text!r}"
              for path in sorted((ROOT / "daemon").rglob("*.py"))
              for line, text in category_literals(path.read_text(encoding="utf-8"))
              if text not in table]
    assert strays == []
