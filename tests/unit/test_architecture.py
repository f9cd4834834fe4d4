"""The package map holds: layers, forbidden imports, no circles, DVC stages that list their code.

All checks read the static import graph: every ``import`` statement, lazy ones inside functions
included, ``if TYPE_CHECKING:`` blocks excluded (docs/architecture.md draws the map).

Why the DVC check: ``dvc repro`` skips a stage whose deps and params are unchanged. A module the
command imports but the stage does not list could change the outputs while DVC reports "didn't
change". So the import closure of the module that defines the stage's ``vsearch`` sub-command
is compared with the stage's ``src/`` deps, both ways: nothing imported is missing, and nothing
listed is stale.
"""

from __future__ import annotations

import ast
import shlex
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest
import typer
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "vsearch"

# Low to high: a package imports from its own layer and the ones below, never above.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        ("settings", "errors", "contracts", "fsio", "split", "mined", "trained", "assets"), 0
    ),
    "cli_support": 0,
    "local": 0,  # process management: may import the foundation only
    **dict.fromkeys(("model", "index"), 1),
    "search": 2,
    **dict.fromkeys(("world", "data", "validation", "mining", "training", "tracking"), 3),
    "evaluation": 4,
    "registry": 5,
    "serving": 6,
    "cli": 7,  # the `vsearch` command: wiring over everything
}
# Imports the map forbids outright (the cli.py of a package included).
FORBIDDEN: dict[str, set[str]] = {
    "training": {"serving", "mining", "evaluation", "registry", "world"},
    "world": {"training"},
    "tracking": {"training", "evaluation"},
    "local": {"serving"},
}


def _module_file(name: str) -> Path | None:
    """The file of a first-party module (``vsearch.x.y``), or None when it is not ours."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST) -> set[str]:
    """Dotted names imported anywhere in ``tree`` (submodules of ``from x import y`` included)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@cache
def _direct_imports(name: str) -> frozenset[str]:
    path = _module_file(name)
    if path is None:
        return frozenset()
    names = {n for n in _imported_names(ast.parse(path.read_text())) if _module_file(n)}
    parts = name.split(".")
    names.update(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
    return frozenset(names)


def import_closure(name: str) -> set[Path]:
    """Files of every first-party module ``name`` imports, directly or not (itself included)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(_direct_imports(mod))
    return {p for p in map(_module_file, seen) if p is not None}


def _part_of(module: str) -> str:
    """The map's unit of a module: ``vsearch.<part>`` (a package or a top-level module)."""
    return module.split(".")[1] if module.count(".") else module


def _modules() -> list[str]:
    names = []
    for path in SRC.joinpath(PACKAGE).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def _part_edges() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) -> the importing modules, first-party parts only."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for mod in _modules():
        if mod == PACKAGE:
            continue
        for dep in _direct_imports(mod):
            a, b = _part_of(mod), _part_of(dep)
            if dep != PACKAGE and a != b:
                edges[(a, b)].append(mod)
    return edges


def test_every_part_has_a_layer() -> None:
    parts = {_part_of(m) for m in _modules() if m != PACKAGE}
    assert parts <= set(LAYERS), f"add to LAYERS (and docs/architecture.md): {parts - set(LAYERS)}"


def test_no_import_goes_up_a_layer() -> None:
    """A package's own ``cli.py`` is command wiring and may reach up; nothing else may."""
    up = sorted(
        f"{m} -> vsearch.{b}"
        for (a, b), mods in _part_edges().items()
        if LAYERS[a] < LAYERS[b]
        for m in mods
        if not m.endswith(".cli")
    )
    assert not up, f"imports that go up a layer: {up}"


def test_forbidden_imports() -> None:
    found = sorted(
        f"{m} -> vsearch.{b}"
        for (a, b), mods in _part_edges().items()
        if b in FORBIDDEN.get(a, set())
        for m in mods
    )
    assert not found, f"imports the map forbids: {found}"


def test_no_import_circle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in _part_edges():
        graph[a].add(b)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph[node])
        return False

    circles = sorted(f"{a} <-> {b}" for a, b in _part_edges() if a < b and reaches(b, a))
    circles += sorted(f"{b} <-> {a}" for a, b in _part_edges() if a > b and reaches(b, a))
    assert not circles, f"packages that import each other (directly or not): {set(circles)}"


def command_module(cmd: str) -> str:
    """The module defining the ``vsearch`` sub-command a stage's ``cmd`` runs."""
    from vsearch.cli import app

    words = shlex.split(cmd)
    if words[0] != "vsearch":
        raise ValueError(f"stage command does not run vsearch: {cmd!r}")
    group = typer.main.get_command(app)
    command = group.commands[words[1]]  # type: ignore[attr-defined]
    callback = command.callback
    if callback is None:  # a group: its sub-command is the next word
        callback = command.commands[words[2]].callback
    return callback.__module__


def _stages() -> dict[str, dict]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _covered(path: Path, deps: list[Path]) -> bool:
    return any(path == d or d in path.parents for d in deps)


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_deps_match_the_code_its_command_imports(stage: str) -> None:
    spec = _stages()[stage]
    deps = [ROOT / d for d in spec.get("deps", []) if str(d).startswith("src/")]
    imported = import_closure(command_module(spec["cmd"]))
    missing = sorted(str(p.relative_to(ROOT)) for p in imported if not _covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage!r} runs code it does not list in deps: {missing}"
    stale = sorted(
        str(d.relative_to(ROOT)) for d in deps if not any(_covered(p, [d]) for p in imported)
    )
    assert not stale, f"dvc.yaml stage {stage!r} lists code its command never imports: {stale}"


def test_closure_follows_lazy_imports_and_skips_type_checking(tmp_path: Path) -> None:
    tree = ast.parse(
        "import os\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from vsearch.never import x\n"
        "def f():\n    from vsearch.lazy import y\n"
    )
    names = _imported_names(tree)
    assert "vsearch.lazy" in names and "vsearch.lazy.y" in names
    assert not any(n.startswith("vsearch.never") for n in names)
