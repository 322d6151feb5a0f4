"""Bad input exits non-zero with a one-paragraph message, no traceback, and nothing half-written.

A config error stops before anything is written; a run that cannot start (its dataset is missing) is
recorded in MLflow as FAILED with the error, so the grid's plan and status show why, and leaves no checkpoint.
"""

import json
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
    ("method: unimatch_v2\nmodel:\n  backbone: tiny\n", ["key 'unimatch_v2.comp_drop'", "backbone 'tiny'"]),
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


def test_plan_rejects_each_incompatible_cell(tmp_path):
    """The plan runs the catalog check on every cell: nothing starts, each bad cell is named with its problem."""
    proc = run([str(ROOT / "launch" / "run_grid.py"), "--exp", "demo", "--methods", "unimatch_v2,corrmatch",
                "--dry-run", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--output-dir",
                str(tmp_path / "runs")], tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    bad = [line for line in proc.stderr.splitlines() if line.startswith("  cell ")]
    assert len(bad) == 2 and "2 of 4 cells" in proc.stderr
    for line, split in zip(bad, ("1_16", "1_4")):
        assert f"method=unimatch_v2, split={split}, seed=0" in line
        assert "key 'unimatch_v2.comp_drop'" in line and "backbone 'tiny'" in line and "comp_drop=false" in line
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


def test_plan_accepts_a_compatible_encoder(tmp_path, capsys):
    from semiseg.launch import run_grid
    from semiseg.cli import run_cli

    sets = ["--set", "model.backbone=dinov2_small", "--set", "data.crop_size=56"]
    base = ["--exp", "demo", "--dry-run", "--json", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--output-dir", str(tmp_path / "runs")]
    assert run_cli(run_grid.main, base + ["--methods", "unimatch_v2"] + sets) == 2  # demo_pretext is for 'tiny'
    assert "key 'model.pretrained'" in capsys.readouterr().err
    assert run_cli(run_grid.main, base + ["--methods", "unimatch_v2,supervised"] + sets
                   + ["--set", "model.pretrained="]) == 0
    cells = json.loads(capsys.readouterr().out)
    assert len(cells) == 4 and {c["backbone"] for c in cells} == {"dinov2_small"}


def test_tune_rejects_incompatible_cells_before_ray(tmp_path, capsys):
    from semiseg.launch import tune
    from semiseg.cli import run_cli

    argv = ["--exp", "demo", "--methods", "unimatch_v2", "--param", "loss.conf_thresh=0.8:0.9",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--output-dir", str(tmp_path / "runs")]
    assert run_cli(tune.main, argv) == 2
    err = capsys.readouterr().err
    assert "2 of 2 cells fail the catalog check" in err and "key 'unimatch_v2.comp_drop'" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_tools_share_the_selection_options(capsys):
    from semiseg.launch import run_grid, status, tune

    selection = ["--exp", "demo", "--methods", "unimatch", "--splits", "1_16", "--seed-list", "0,1", "--set",
                 "train.epochs=2", "--tracking-uri", "sqlite:///x.db", "--output-dir", "out"]
    ray = ["--ray-address", "auto", "--cpus-per-cell", "2", "--gpus-per-cell", "0.5", "--max-retries", "1",
           "--max-parallel", "3"]
    for module, argv in ((run_grid, selection + ray), (status, selection), (tune, selection + ray)):
        args = vars(module.build_parser().parse_args(argv))
        assert args["methods"] == "unimatch" and args["sets"] == ["train.epochs=2"] and args["output_dir"] == "out"
        if argv != selection:
            assert (args["cpus_per_cell"], args["gpus_per_cell"], args["max_retries"], args["max_parallel"]) == \
                (2.0, 0.5, 1, 3)
    old = tune.build_parser().parse_args(["--exp", "demo", "--max-concurrent", "3", "--cpus-per-trial", "2",
                                          "--max-failures", "1"])  # the old tune spellings still work
    assert (old.max_parallel, old.cpus_per_cell, old.max_retries) == (3, 2.0, 1)
    assert "--max-concurrent is deprecated; use --max-parallel" in capsys.readouterr().err
    assert "--dry-run" not in status.build_parser().format_help()
