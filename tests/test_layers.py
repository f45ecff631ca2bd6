"""Layers point one way and no module imports itself in a circle.

The layers come from `.importlinter` (the contract `make lint` runs with import-linter); this
test reads them from there and checks the same rules over an `ast` walk of daemon/, so the
contract holds without the tool too. Every import counts: inside functions, under
``TYPE_CHECKING``, relative ones.
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "daemon"

Graph = dict[str, set[str]]


def module_files(root: Path = ROOT / PACKAGE) -> dict[str, Path]:
    """Dotted module name → source file, for every module of the package."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(tree: ast.AST, module: str, is_package: bool) -> Iterable[str]:
    """Every dotted name `module` imports, wherever the import statement stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import name" imports the submodule pkg.name when there is one, else
            # pkg itself (`resolve` falls back to the longest module that exists).
            yield from (f"{base}.{alias.name}" for alias in node.names)


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` names or lies in; None outside the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(modules: dict[str, Path]) -> Graph:
    """Module → the package modules it imports (itself excluded)."""
    graph: Graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {resolve(name, modules)
                   for name in imported_names(tree, module, path.name == "__init__.py")}
        graph[module] = {target for target in targets if target and target != module}
    return graph


def read_layers(config: Path = ROOT / ".importlinter") -> tuple[list[list[str]], list[bool]]:
    """The layers contract: top-level module names per layer (top first) and, per layer,
    whether its siblings must stay independent of each other."""
    parser = configparser.ConfigParser()
    parser.read(config, encoding="utf-8")
    contract = next(parser[s] for s in parser.sections() if parser[s].get("type") == "layers")
    assert contract["containers"].strip() == PACKAGE
    layers, independent = [], []
    for line in contract["layers"].split("\n"):
        if line.strip():
            separator = "|" if "|" in line else ":"
            layers.append([tail.strip() for tail in line.split(separator)])
            independent.append(separator == "|")
    return layers, independent


def top_level(module: str) -> str | None:
    """The child of the package a module belongs to (``daemon.store.db`` → ``store``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_violations(graph: Graph, layers: list[list[str]], independent: list[bool]) -> list[str]:
    """Imports that reach a higher layer, or an independent sibling of the same layer."""
    rank = {tail: index for index, tails in enumerate(layers) for tail in tails}
    found = []
    for importer, targets in sorted(graph.items()):
        source = top_level(importer)
        for target in sorted(targets):
            tail = top_level(target)
            if source is None or tail is None or source == tail:
                continue  # the package root holds only the version; same unit is not a layer
            upward = rank[tail] < rank[source]
            sibling = rank[tail] == rank[source] and independent[rank[source]]
            if upward or sibling:
                found.append(f"{importer} imports {target}")
    return found


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(groups)


def sibling_graphs(graph: Graph) -> dict[str, Graph]:
    """For every package, the imports between its children, each child standing for itself
    and everything below it (what import-linter's ``acyclic_siblings`` checks)."""
    packages: dict[str, Graph] = {}
    for importer, targets in graph.items():
        for target in targets:
            a, b = importer.split("."), target.split(".")
            common = 0
            while common < min(len(a), len(b)) and a[common] == b[common]:
                common += 1
            if common < min(len(a), len(b)):  # neither is the other's ancestor package
                parent = ".".join(a[:common])
                edges = packages.setdefault(parent, {})
                edges.setdefault(a[common], set()).add(b[common])
    return packages


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(module_files())


def test_every_top_level_module_has_a_layer(graph):
    layers, _ = read_layers()
    listed = {tail for tails in layers for tail in tails}
    present = {top_level(module) for module in graph} - {None}
    assert present <= listed, f"not in .importlinter: {sorted(present - listed)}"


def test_no_module_imports_a_higher_layer(graph):
    layers, independent = read_layers()
    found = layer_violations(graph, layers, independent)
    assert not found, "upward imports:\n" + "\n".join(found)


def test_no_import_circles(graph):
    found = [" -> ".join(group) for group in cycles(graph)]
    found += [f"in {parent}: " + " -> ".join(group)
              for parent, edges in sorted(sibling_graphs(graph).items())
              for group in cycles(edges)]
    assert not found, "import circles:\n" + "\n".join(found)


def test_the_checks_catch_what_they_look_for(tmp_path):
    """The walk sees imports in functions, under TYPE_CHECKING and relative ones; the
    checks name an upward import and a circle."""
    package = tmp_path / PACKAGE
    for name, text in {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from daemon.high import b\n",
        "low/c.py": "from . import a\n",
        "high/__init__.py": "",
        "high/b.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from daemon.low.c import thing\n"),
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    built = import_graph(module_files(package))
    assert built["daemon.low.c"] == {"daemon.low.a"}
    assert built["daemon.high.b"] == {"daemon.low.c"}
    assert layer_violations(built, [["high"], ["low"]], [False, False]) == [
        "daemon.low.a imports daemon.high.b"]
    assert cycles(built) == [["daemon.high.b", "daemon.low.a", "daemon.low.c"]]
    assert cycles(sibling_graphs(built)[PACKAGE]) == [["high", "low"]]
