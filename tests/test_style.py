"""``ruff check`` (configured in pyproject.toml ``[tool.ruff]``) passes on the whole tree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_check_is_clean():
    assert RUFF.exists(), "ruff is missing: pip install -e '.[test]'"
    proc = subprocess.run([str(RUFF), "check", "--no-cache", "--output-format", "concise", str(ROOT)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
