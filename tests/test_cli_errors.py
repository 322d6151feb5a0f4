"""Bad input exits non-zero with a one-paragraph message, no traceback, and nothing half-written.

A config error stops before anything is written; a run that cannot start (its dataset is missing) is
recorded in MLflow as FAILED with the error, so the grid's plan and status show why, and leaves no checkpoint.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("yaml_text, fragments", [
    ("method: unimatch\ntrain:\n  epcohs: 3\n", ["unknown key 'train.epcohs'", "did you mean 'train.epochs'"]),
    ("method: unimatch\ndata:\n  dataset: pascal\n  root: /nonexistent/VOC2012\n",
     ["dataset 'pascal'", "/nonexistent/VOC2012", "does not exist", "JPEGImages"]),
    ("method: unimatch_v9\n", ["'unimatch_v9'", "valid: supervised, fixmatch, unimatch"]),
])
def test_train_rejects_bad_input_cleanly(tmp_path, yaml_text, fragments):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text + f"runtime:\n  output_dir: {tmp_path / 'runs'}\n"
                               f"  tracking_uri: sqlite:///{tmp_path / 'mlflow.db'}\n")
    proc = run(["-m", "semiseg.train", "--config", str(cfg)], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "\n\n" not in proc.stderr.strip()  # one paragraph
    for fragment in fragments:
        assert fragment in proc.stderr
    assert not list((tmp_path / "runs").glob("*/*/*.pth"))
    if "dataset: pascal" not in yaml_text:
        assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()
        return
    from semiseg.tracking import search_cells

    (failed,) = search_cells(f"sqlite:///{tmp_path / 'mlflow.db'}", "semiseg")
    assert failed.status == "FAILED" and "/nonexistent/VOC2012" in failed.tags["semiseg.error"]


def test_run_grid_unknown_experiment(tmp_path):
    proc = run([str(ROOT / "launch" / "run_grid.py"), "--exp", "pasal_all"], tmp_path)
    assert proc.returncode == 2 and "unknown experiment 'pasal_all'" in proc.stderr and "demo" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_grid_bad_override(tmp_path):
    proc = run([str(ROOT / "launch" / "run_grid.py"), "--exp", "demo", "--dry-run", "--set", "train.epochz=3"],
               tmp_path)
    assert proc.returncode == 2 and "train.epochz" in proc.stderr and "Traceback" not in proc.stderr
