"""The shape of the runtime and of the model pipeline (docs/architecture.md): small modules, no
reaching into another module's private names, test models outside the product. The import
direction is pyproject's import-linter contracts (tests/test_import_contract.py runs them)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_TEST_LINES = 500


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


PRODUCT = ("guardcli", "export")  # what the wheel ships (pyproject: packages.find)


def _modules(*packages: str) -> list[Path]:
    return [p for package in packages for p in (ROOT / package).rglob("*.py")]


def test_every_module_of_the_product_is_small():
    big = {
        str(p.relative_to(ROOT)): n
        for p in _modules(*PRODUCT, "testkit")
        if (n := _lines(p)) > MAX_MODULE_LINES
    }
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_the_wheel_ships_the_product_and_not_the_test_models():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert include == [f"{package}*" for package in PRODUCT]
    assert (ROOT / "testkit" / "fixture.py").is_file()
    assert not list((ROOT / "export").rglob("tiny.py")) and not list(
        (ROOT / "export").rglob("fixture.py")
    )


def test_every_test_file_is_small():
    big = {p.name: n for p in (ROOT / "tests").glob("*.py") if (n := _lines(p)) > MAX_TEST_LINES}
    assert not big, f"test files over {MAX_TEST_LINES} lines: {big}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _ours(module: str) -> bool:
    return module.split(".")[0] in (*PRODUCT, "testkit")


def test_no_module_imports_a_private_name_of_another():
    """``from guardcli.x import _y`` and ``x._y`` on an imported guardcli, export or testkit
    module are refused: what another module needs is public, and named so."""
    found = []
    for path in [*_modules(*PRODUCT, "testkit"), *(ROOT / "tests").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _ours(node.module or ""):
                found += [f"{path.name}: {a.name}" for a in node.names if _private(a.name)]
                modules |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                modules |= {a.asname for a in node.names if _ours(a.name) and "." in a.name}
        found += [
            f"{path.name}: {node.value.id}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and _private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ]
    assert not found, found
