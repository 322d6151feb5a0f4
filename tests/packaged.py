"""Build this clone's wheel the way pip does for a user, for the packaging and installation tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(tmp: Path) -> Path:
    """The wheel of this clone, built from a copy in ``tmp/src`` (setuptools writes build/ and *.egg-info beside
    the sources) into ``tmp/dist``; semiseg/ keeps its symlinks to the top-level package folders."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("semiseg", "experiments", "launch", "reports"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("semiseg-*.whl")
    return wheel
