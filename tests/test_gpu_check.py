"""The GPU check script (tests/gpu/check.sh) in its tiny CPU mode, one row, so it keeps working without a GPU."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_a_ddp_row_on_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", str(REPO / "tests" / "gpu" / "check.sh"), "--device", "cpu", "--steps", "1",
                          "--rows", "ddp/corrmatch/*"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    header, line = (tmp_path / "gpu_check.tsv").read_text().splitlines()
    row = dict(zip(header.split("\t"), line.split("\t")))
    assert row["row"] == "ddp/corrmatch/bf16" and row["backbone"] == "tiny" and row["ddp"] == "1"
    assert row["amp"] == "off" and float(row["step_ms"]) > 0 and float(row["loss"]) > 0  # autocast is CUDA-only
    assert line in res.stdout
