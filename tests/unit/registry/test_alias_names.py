"""The registry's alias names come from the settings, never from a string written in the code.

Why: the service serves ``serving.model_alias``, training moves ``registry.challenger_alias``
and the promotion ``registry.champion_alias``; a literal ``"champion"`` somewhere would keep
working until someone renames the alias in ``params.yaml``. The scan reads every module under
``src/`` and ``flows/`` and looks at its string constants, docstrings excepted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vsearch.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SETTINGS_MODULE = ROOT / "src" / "vsearch" / "settings.py"  # where the defaults are declared


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants (module, class, function)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _dict_keys(tree: ast.Module) -> set[int]:
    """ids of constants used as a key of a result dict (``out["champion"] = version``): a field
    name in a report, not an alias the registry is asked for."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            out.add(id(node.slice))
        elif isinstance(node, ast.Dict):
            out.update(id(k) for k in node.keys if k is not None)
    return out


def alias_literals(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """``(line, text)`` of each string constant that is one of ``names`` (``@`` or ``/`` around
    it allowed, as in ``models:/m@champion``)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree) | _dict_keys(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip
            and node.value.strip(" @:/") in names
        ):
            found.append((node.lineno, node.value))
    return found


def test_no_module_writes_an_alias_name_as_a_literal() -> None:
    r = Settings().registry
    names = {r.champion_alias, r.challenger_alias, Settings().serving.model_alias}
    files = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "flows").rglob("*.py"))
    assert len(files) > 20  # the scan found the code
    offenders = [
        f"{f.relative_to(ROOT)}:{line}: {text!r}"
        for f in files
        if f != SETTINGS_MODULE
        for line, text in alias_literals(f, names)
    ]
    assert offenders == []


def test_the_scan_sees_a_literal_alias(tmp_path: Path) -> None:
    code = tmp_path / "m.py"
    code.write_text(
        '"""Serves the champion."""\n'
        'out = {"champion": 1}\n'
        'out["challenger"] = 2\n'
        'reg.find("champion")\n'
        'uri = f"models:/{name}@challenger"\n'
    )
    assert alias_literals(code, {"champion", "challenger"}) == [
        (4, "champion"),
        (5, "@challenger"),
    ]
