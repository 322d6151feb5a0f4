"""A real local SLURM cluster for the integration tests, started once per session by start_cluster.sh.

Outside CI the tests skip when the cluster cannot start (no root, no apt); with CI=true they fail.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent / "start_cluster.sh"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Path:
    """The cluster's folder; ``SLURM_CONF`` points at its slurm.conf for the whole session."""
    folder = tmp_path_factory.mktemp("slurm")
    try:
        out = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=600)
        problem = "" if out.returncode == 0 else out.stderr[-3000:]
    except (OSError, subprocess.SubprocessError) as exc:
        problem = str(exc)
    if problem:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True)
        message = f"the local SLURM cluster did not start:\n{problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    yield folder
    subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before
