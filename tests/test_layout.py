"""The shape of the runtime package (docs/architecture.md): small modules, no reaching into
another module's private names. The import direction is pyproject's import-linter contracts
(tests/test_import_contract.py runs them)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_TEST_LINES = 500


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_every_runtime_module_is_small():
    big = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "guardcli").rglob("*.py")
        if (n := _lines(p)) > MAX_MODULE_LINES
    }
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_every_test_file_is_small():
    big = {p.name: n for p in (ROOT / "tests").glob("*.py") if (n := _lines(p)) > MAX_TEST_LINES}
    assert not big, f"test files over {MAX_TEST_LINES} lines: {big}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_imports_a_private_name_of_the_runtime():
    """``from guardcli.x import _y`` and ``x._y`` on an imported guardcli module are refused:
    what another module needs is public, and named so."""
    found = []
    for path in [*(ROOT / "guardcli").rglob("*.py"), *(ROOT / "tests").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("guardcli"):
                found += [f"{path.name}: {a.name}" for a in node.names if _private(a.name)]
                modules |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                modules |= {a.asname for a in node.names if a.name.startswith("guardcli.")}
        found += [
            f"{path.name}: {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and _private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ]
    assert not found, found
