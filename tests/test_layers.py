"""The import layers of pyproject.toml ``[tool.importlinter]``, checked by the real ``lint-imports``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("semiseg", "experiments", "launch", "reports")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"



def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    assert LINT_IMPORTS.exists(), "import-linter is missing: pip install -e '.[test]'"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"], cwd=tree,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_contracts_hold():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.fixture
def tree(tmp_path):
    """A copy of the project's packages (semiseg/ keeps its symlinks) and pyproject.toml, to break on purpose."""
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize("module, line, broken", [
    ("semiseg/config.py", "from semiseg.methods import METHODS", "semiseg.config -> semiseg.methods"),
    ("semiseg/trainer.py", "import semiseg.launch.plan", "semiseg.trainer -> semiseg.launch.plan"),
    ("experiments/search.py", "from semiseg.launch.options import select_cells",
     "semiseg.experiments.search -> semiseg.launch.options"),
    ("semiseg/data/demo.py", "from semiseg.data.datasets import DATASETS",
     "No import cycles between the modules of any package BROKEN"),
    ("launch/status.py", "from semiseg.launch.run_grid import select_cells",
     "semiseg.launch.status -> semiseg.launch.run_grid"),
])
def test_an_upward_import_or_a_cycle_breaks_a_contract(tree, module, line, broken):
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    proc = lint_imports(tree)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout
    assert broken in proc.stdout, proc.stdout


def test_every_module_has_a_layer():
    """A new module must be placed in its package's layers, else the contracts would not constrain it."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    for contract in contracts:
        for container in contract.get("containers", []):
            placed = {name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")}
            folder = ROOT / container.replace(".", "/")
            present = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
            present |= {p.parent.name for p in folder.glob("*/__init__.py")}
            assert present == placed, f"{container}: unplaced {present - placed}, absent {placed - present}"
