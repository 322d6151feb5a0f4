"""The `semiseg` command, the user's workspace and the field's conventions, run as real processes in a clone:
usage lines follow the invocation, workspace files come before the built-in ones, MLFLOW_TRACKING_URI is
honoured, runs carry MLflow's source tags, checkpoints become artifacts on request, `status` never writes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semiseg.tracking import list_artifacts, search_cells

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "model.pretrained=", "--set", "data.crop_size=32", "--set", "train.batch_size=4",
        "--set", "train.epochs=1", "--set", "train.max_iters_per_epoch=2"]


def semiseg(*args: str, cwd: Path, env: dict[str, str] | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m semiseg ARGS`` in ``cwd`` (no SEMISEG_HOME or MLFLOW_TRACKING_URI unless ``env`` gives them)."""
    base = {k: v for k, v in os.environ.items() if k not in ("SEMISEG_HOME", "MLFLOW_TRACKING_URI")}
    return subprocess.run([sys.executable, "-m", "semiseg", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_help_lists_every_command_with_the_invocation_in_usage_lines(tmp_path):
    top = semiseg("--help", cwd=tmp_path)
    assert top.returncode == 0 and top.stdout.startswith("usage: python -m semiseg ")
    for name in ("init", "train", "grid", "status", "sync", "tune", "tables", "splits", "pretext", "ood"):
        assert f"\n  {name} " in top.stdout
    grid = semiseg("grid", "--help", cwd=tmp_path)
    assert grid.returncode == 0 and grid.stdout.startswith("usage: python -m semiseg grid ")
    assert "python -m semiseg grid --exp demo --dry-run" in grid.stdout and "launch/" not in grid.stdout
    tune = semiseg("tune", "--help", cwd=tmp_path)
    assert "python -m semiseg grid --exp demo_thresholds_tuned" in tune.stdout
    script = subprocess.run([sys.executable, "launch/run_grid.py", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert script.returncode == 0 and script.stdout.startswith("usage: python launch/run_grid.py ")
    assert "python launch/status.py" in script.stdout  # the sibling command in the same style
    module = subprocess.run([sys.executable, "-m", "semiseg.launch.status", "--help"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert module.stdout.startswith("usage: python -m semiseg.launch.status ")
    bad = semiseg("nope", cwd=tmp_path)
    assert bad.returncode == 2 and "invalid choice: 'nope'" in bad.stderr


def test_a_workspace_experiment_inherits_a_builtin_grid_and_shadows_by_name(tmp_path):
    ws, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (ws / "experiments").mkdir(parents=True)
    (ws / "experiments" / "mine.yaml").write_text("description: mine\ninherit: demo\ngrid: {method: [unimatch]}\n")
    (ws / "experiments" / "demo.yaml").write_text("description: my demo\ninherit: demo\ngrid: {seed: [7]}\n")
    args = ("grid", "--exp", "mine", "--dry-run", "--json")
    in_ws = semiseg(*args, cwd=ws)
    assert in_ws.returncode == 0, in_ws.stderr
    cells = json.loads(in_ws.stdout)
    assert {c["method"] for c in cells} == {"unimatch"} and {c["split"] for c in cells} == {"1_16", "1_4"}
    for how in ({"env": {"SEMISEG_HOME": str(ws)}}, {"option": ["--workspace", str(ws)]}):
        proc = semiseg(*how.get("option", []), *args, cwd=elsewhere, env=how.get("env"))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == [{**c} for c in json.loads(proc.stdout)] and \
            [c["hash"] for c in json.loads(proc.stdout)] == [c["hash"] for c in cells]
    demo = semiseg("grid", "--exp", "demo", "--dry-run", "--json", cwd=ws)  # the workspace's demo, on the built-in
    assert demo.returncode == 0, demo.stderr
    assert {c["seed"] for c in json.loads(demo.stdout)} == {7}
    help_text = semiseg("grid", "--help", cwd=ws).stdout
    assert "mine" in help_text
    missing = semiseg("grid", "--exp", "mine", "--dry-run", cwd=elsewhere)
    assert missing.returncode == 2 and "unknown experiment 'mine'" in missing.stderr
    assert str(elsewhere / "experiments") in missing.stderr
    assert not (elsewhere / "mlflow.db").exists() and not (ws / "mlflow.db").exists()


def test_init_creates_a_workspace_whose_profile_and_example_are_found(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    proc = semiseg("init", str(ws), "--cluster", "hpc", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (ws / "experiments" / "example.yaml").is_file() and (ws / "splits").is_dir()
    assert "python -m semiseg grid --exp example --dry-run" in proc.stdout
    profile = ws / "clusters" / "hpc.yaml"
    profile.write_text(profile.read_text().replace("partition: gpu", "partition: mine"))
    again = semiseg("--workspace", str(ws), "init", cwd=tmp_path)  # existing files are kept
    assert again.returncode == 0 and "kept" in again.stdout and "partition: mine" in profile.read_text()
    example = semiseg("--workspace", str(ws), "grid", "--exp", "example", "--dry-run", "--json", cwd=tmp_path)
    assert example.returncode == 0, example.stderr
    assert {c["method"] for c in json.loads(example.stdout)} == {"supervised", "unimatch"}

    from semiseg.launch.slurm import load_profile

    monkeypatch.setenv("SEMISEG_HOME", str(ws))
    assert load_profile("hpc")["partition"] == "mine"
    assert load_profile("local")["partition"] == "debug"  # the built-in ones stay available


def test_splits_import_writes_into_the_workspace(tmp_path):
    src = tmp_path / "official" / "pascal"
    (src / "92").mkdir(parents=True)
    (src / "92" / "labeled.txt").write_text("JPEGImages/a.jpg SegmentationClass/a.png\n")
    (src / "val.txt").write_text("JPEGImages/b.jpg SegmentationClass/b.png\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    proc = semiseg("splits", "import", str(src), "--dataset", "pascal", cwd=ws)
    assert proc.returncode == 0, proc.stderr
    assert (ws / "splits" / "pascal" / "92" / "labeled.txt").read_text() == (src / "92" / "labeled.txt").read_text()
    assert (ws / "splits" / "pascal" / "val.txt").is_file()


def test_train_documents_and_prints_the_config(tmp_path):
    keys = semiseg("train", "--help-config", "runtime", cwd=tmp_path)
    assert keys.returncode == 0, keys.stderr
    assert "runtime.log_checkpoints: a string = \"off\"  (one of off, best, all)" in keys.stdout
    assert "optim.lr" not in keys.stdout
    every = semiseg("train", "--help-config", cwd=tmp_path).stdout
    assert "[run (top-level keys)]" in every and "  optim.lr: a number = 0.001" in every
    bad = semiseg("train", "--help-config", "optimiser", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown config section 'optimiser'" in bad.stderr and "optim" in bad.stderr
    (tmp_path / "run.yaml").write_text("method: fixmatch\noptim: {lr: 0.02}\n")
    printed = semiseg("train", "--config", "run.yaml", "--set", "seed=3", "--print-config", cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "method: fixmatch" in printed.stdout and "seed: 3" in printed.stdout and "lr: 0.02" in printed.stdout
    assert "log_checkpoints: 'off'" in printed.stdout
    cell = semiseg("grid", "--exp", "demo", "--print-config", "--methods", "unimatch", "--splits", "1_16",
                   "--seed-list", "0", cwd=tmp_path)
    assert cell.returncode == 0, cell.stderr
    assert cell.stdout.count("--- # cell") == 1 and "backbone: tiny" in cell.stdout
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, demo_root):
    """One demo cell trained by ``semiseg grid`` with MLFLOW_TRACKING_URI naming a store elsewhere and
    ``runtime.log_checkpoints=best``; returns (workspace, store path, the cell's selection, the process)."""
    tmp = tmp_path_factory.mktemp("tracked")
    ws, store = tmp / "ws", tmp / "stores" / "x.db"
    ws.mkdir()
    store.parent.mkdir()
    selection = ["--exp", "demo", "--methods", "supervised", "--splits", "1_16", "--seed-list", "0",
                 "--set", f"data.root={demo_root}", *TINY]
    proc = semiseg("grid", *selection, "--set", "runtime.log_checkpoints=best", cwd=ws,
                   env={"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}, timeout=600)
    return ws, store, selection, proc


def test_mlflow_tracking_uri_source_tags_and_checkpoint_artifacts(tracked):
    ws, store, _, proc = tracked
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert store.is_file() and not (ws / "mlflow.db").exists()
    (run,) = search_cells(f"sqlite:///{store}", "demo")
    assert run.status == "FINISHED"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert run.tags["mlflow.source.git.commit"] == head and run.tags["semiseg.git_dirty"] in ("true", "false")
    assert run.tags["mlflow.source.type"] == "LOCAL" and run.tags["mlflow.source.name"] == "semiseg.train"
    assert run.tags["mlflow.user"]
    assert "best.pth" in list_artifacts(f"sqlite:///{store}", run.run_id)
    assert (Path(run.tags["semiseg.run_dir"]).parent.parent == ws / "runs")


def test_status_leaves_the_store_byte_identical(tracked):
    ws, store, selection, _ = tracked
    uri = {"MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    before = digest(store)
    folder = {p: digest(p) for p in sorted((store.parent).rglob("*")) if p.is_file()}
    shown = semiseg("status", *selection, "--json", cwd=ws, env=uri)
    assert shown.returncode == 0, shown.stderr
    assert [c["state"] for c in json.loads(shown.stdout)] == ["finished"]
    wider = ["supervised,unimatch" if a == "supervised" else a for a in selection]  # unimatch's cell: never run
    for args in (("status", *wider), ("grid", *wider, "--status")):
        proc = semiseg(*args, cwd=ws, env=uri)
        assert proc.returncode == 0 and "1 finished, 1 new" in proc.stdout, proc.stdout + proc.stderr
    assert digest(store) == before
    assert {p: digest(p) for p in sorted((store.parent).rglob("*")) if p.is_file()} == folder


@pytest.mark.parametrize("blocked, args, extra", [
    ("ray", ["tune", "--exp", "demo", "--param", "optim.lr=0.001:0.01"], "ray"),
    ("ray", ["grid", "--exp", "demo", "--backend", "ray"], "ray"),
    ("submitit", ["grid", "--exp", "demo", "--backend", "slurm", "--dry-run"], "slurm"),
])
def test_a_backend_without_its_extra_names_the_extra(tmp_path, blocked, args, extra):
    """The package as installed without the extra: importing it fails (``sys.modules[name] = None``)."""
    code = (f"import sys; sys.modules[{blocked!r}] = None; sys.argv = ['semiseg', *{args!r}]; "
            f"from semiseg.commands import cli_main; sys.exit(cli_main())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"pip install 'semiseg[{extra}]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()
