"""The import layers (DEVELOPERS.md): which package may import which, checked on every module's source.

Why parse instead of importing: an import under ``if TYPE_CHECKING:`` or inside a function never runs at
test time, yet it still ties one layer to another; ``ast`` sees every one of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> the top-level packages it must never import
FORBIDDEN: dict[str, frozenset[str]] = {
    "planning": frozenset({"controller", "simulators"}),
    "simulators": frozenset({"controller", "planning"}),
    "controller": frozenset({"simulators"}),
    "evsite": frozenset({"controller", "planning", "simulators"}),
}

#: modules of the base that wire the layers together (the command line) and so may import any of them
WIRING = ("evsite/cli/", "evsite/__main__.py")


def imported_modules(source: str, filename: str) -> list[tuple[int, str]]:
    """Every absolute module name a source imports, with its line (relative imports stay in the package)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(root: Path) -> list[str]:
    """``path:line imports module`` for every forbidden import under ``root``."""
    bad: list[str] = []
    for package, banned in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if package == "evsite" and rel.startswith(WIRING):
                continue
            for line, module in imported_modules(path.read_text(encoding="utf-8"), rel):
                if module.split(".")[0] in banned:
                    bad.append(f"{rel}:{line} imports {module}")
    return bad


def test_the_tree_keeps_its_layers() -> None:
    assert violations(ROOT) == []


PLANTED = [
    ("planning/x.py", "from controller.csms import CentralSystem\n"),
    ("planning/x.py", "import simulators.site\n"),
    ("simulators/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from controller import events\n"),
    ("simulators/x.py", "def f():\n    from planning.ssm import StateSpaceModel\n"),
    ("controller/sub/x.py", "from simulators.fleet import Fleet\n"),
    ("evsite/x.py", "import planning.loadstudy as ls\n"),
]


@pytest.mark.parametrize(("rel", "source"), PLANTED)
def test_a_planted_forbidden_import_is_found(tmp_path: Path, rel: str, source: str) -> None:
    for package in FORBIDDEN:
        (tmp_path / package).mkdir()
    target = tmp_path / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    found = violations(tmp_path)
    assert len(found) == 1 and found[0].startswith(rel)


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("evsite/cli/x.py", "from controller.csms import CentralSystem\n"),
        ("controller/x.py", "from planning.ssm import StateSpaceModel\n"),
        ("planning/x.py", "from evsite.ev_fleet import Fleet\n"),
        ("simulators/x.py", "from . import site\n"),
    ],
)
def test_allowed_imports_pass(tmp_path: Path, rel: str, source: str) -> None:
    for package in FORBIDDEN:
        (tmp_path / package).mkdir()
    target = tmp_path / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    assert violations(tmp_path) == []
