"""A user's installation: the project's wheel installed (non-editable) into a fresh venv, then used from an
empty folder through the `semiseg` console script. Nothing lands top level in site-packages, and no file of
the installed package changes while the commands write their outputs into the workspace."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from semiseg.tracking import search_cells
from packaged import build_wheel

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "model.pretrained=", "--set", "data.crop_size=32", "--set", "train.batch_size=4",
        "--set", "train.epochs=1", "--set", "train.max_iters_per_epoch=2", "--set", "runtime.num_workers=0"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv holding the wheel of this clone; its dependencies come from the test environment's
    site-packages (a path file), so nothing is downloaded. It lies inside another git repository, as a venv in
    a user's project folder does."""
    tmp = tmp_path_factory.mktemp("install")
    (tmp / "theirs.txt").write_text("another project\n")
    for cmd in (["init", "-q"], ["add", "theirs.txt"], ["-c", "user.name=u", "-c", "user.email=u@example.org",
                                                        "commit", "-q", "-m", "their project"]):
        subprocess.run(["git", *cmd], cwd=tmp, check=True, capture_output=True)
    wheel = build_wheel(tmp)
    env = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, capture_output=True, timeout=300)
    python = env / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return env


def package_files(env: Path) -> dict[str, str]:
    site = next((env / "lib").glob("python*/site-packages"))
    return {str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((site / "semiseg").rglob("*")) if p.is_file()}


def test_a_user_works_from_an_empty_folder(venv, tmp_path, demo_root):
    site = next((venv / "lib").glob("python*/site-packages"))
    assert (site / "semiseg" / "launch" / "run_grid.py").is_file()
    assert not [n for n in ("experiments", "launch", "reports", "splits") if (site / n).exists()]
    before = package_files(venv)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SEMISEG_HOME", "MLFLOW_TRACKING_URI", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    def semiseg(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(venv / "bin" / "semiseg"), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    assert semiseg("--help").stdout.startswith("usage: semiseg ")
    assert "demo" in semiseg("grid", "--exp", "demo", "--dry-run").stdout
    (work / "experiments").mkdir()
    (work / "experiments" / "mine.yaml").write_text("description: mine\ninherit: demo\ngrid: {method: [unimatch]}\n")
    cells = json.loads(semiseg("grid", "--exp", "mine", "--dry-run", "--json").stdout)
    assert {c["method"] for c in cells} == {"unimatch"}

    src = tmp_path / "official" / "pascal"
    (src / "1464").mkdir(parents=True)
    (src / "1464" / "labeled.txt").write_text("JPEGImages/a.jpg SegmentationClass/a.png\n")
    semiseg("splits", "import", str(src), "--dataset", "pascal")
    assert (work / "splits" / "pascal" / "1464" / "labeled.txt").is_file()

    tuned = semiseg("tune", "--exp", "demo", "--methods", "supervised", "--splits", "1_16", "--seed-list", "0",
                    "--param", "optim.lr=log:0.001:0.01", "--num-samples", "2", "--scheduler", "fifo",
                    "--set", f"data.root={demo_root}", *TINY, timeout=600)
    assert (work / "experiments" / "demo_tuned.yaml").is_file()
    assert "run it with semiseg grid --exp demo_tuned" in tuned.stdout
    assert (work / "mlflow.db").is_file() and (work / "runs" / "tune").is_dir()
    runs = search_cells(f"sqlite:///{work / 'mlflow.db'}", "demo-tune")
    assert len(runs) == 3  # the study's parent run and its 2 trials
    for run in runs:  # made by an installation: no commit, and not the surrounding repository's HEAD
        assert "mlflow.source.git.commit" not in run.tags and run.tags.get("semiseg.git_commit", "unknown") == "unknown"
        assert run.tags["semiseg.version"] and run.tags["mlflow.source.type"] == "LOCAL"
    assert package_files(venv) == before
