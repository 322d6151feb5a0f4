"""Run-lifecycle fault injection, as real processes: SIGKILL at every write point, SIGTERM to the process
group, racing launchers, shared cells, foreign and corrupt checkpoints, a lost store, a full disk and a
read-only folder. After each: relaunch, then every cell has exactly one FINISHED run, each epoch logged
once, no RUNNING run left, and the final weights of an uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from semiseg.checkpoint import load_training
from semiseg.config import save_config
from semiseg.runfiles import FAULT_ENV
from semiseg.runtime import run_dir_of
from semiseg.tracking import metric_history, search_cells

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2
#: a small FixMatch run with a 1-worker loader (the default), 3 iterations per epoch
OPTS = ("method=fixmatch", f"train.epochs={EPOCHS}", "train.max_iters_per_epoch=3", "runtime.num_workers=1")


def train_cmd(cfg_path: Path) -> list[str]:
    return [sys.executable, "-m", "semiseg.train", "--config", str(cfg_path)]


def launch(cfg, folder: Path, fault: str = "", **popen) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "run.yaml"
    save_config(cfg, path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", FAULT_ENV: fault}
    return subprocess.run(train_cmd(path), env=env, capture_output=True, text=True, timeout=300, **popen)


def model_weights(cfg) -> dict[str, torch.Tensor]:
    return load_training(run_dir_of(cfg) / "last.pth")["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, demo_root):
    """The weights of an uninterrupted run of the test config."""
    from conftest import small_config

    tmp = tmp_path_factory.mktemp("reference")
    cfg = small_config(tmp, demo_root, *OPTS)
    done = launch(cfg, tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return model_weights(cfg)


def assert_one_clean_run(cfg, reference) -> None:
    """Exactly one FINISHED run of the cell, every epoch logged once, nothing RUNNING, reference weights."""
    runs = search_cells(cfg.runtime.tracking_uri, cfg.runtime.experiment)
    assert [r.status for r in runs] == ["FINISHED"], [(r.run_id, r.status) for r in runs]
    steps = [s for s, _ in metric_history(cfg.runtime.tracking_uri, runs[0].run_id, "val/miou")]
    assert steps == list(range(EPOCHS)), steps
    assert len(metric_history(cfg.runtime.tracking_uri, runs[0].run_id, "best_miou")) == 1
    weights = model_weights(cfg)
    for key, value in reference.items():
        assert torch.equal(value, weights[key]), key
    assert not list(run_dir_of(cfg).glob("*.tmp"))


@pytest.mark.parametrize("fault", ["run_created", "metrics_logged:1", "checkpoint_written:1", "checkpoint_renamed:1",
                                   "metrics_logged:2", "checkpoint_written:2", "metrics_logged:3", "final_status"])
def test_sigkill_at_each_write_point_then_relaunch(make_config, tmp_path, reference, fault):
    cfg = make_config(*OPTS)
    killed = launch(cfg, tmp_path, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    again = launch(cfg, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_clean_run(cfg, reference)


def test_a_finished_cell_is_left_alone(make_config, tmp_path):
    cfg = make_config(*OPTS)
    assert launch(cfg, tmp_path).returncode == 0
    (run,) = search_cells(cfg.runtime.tracking_uri, cfg.runtime.experiment)
    stamp = (run_dir_of(cfg) / "last.pth").stat().st_mtime_ns
    again = launch(cfg, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is finished" in again.stdout and "nothing to do" in again.stdout
    (same,) = search_cells(cfg.runtime.tracking_uri, cfg.runtime.experiment)
    assert same.run_id == run.run_id and same.status == "FINISHED" and same.end_time == run.end_time
    assert (run_dir_of(cfg) / "last.pth").stat().st_mtime_ns == stamp


def test_sigterm_to_the_process_group_with_a_loader_worker_stops_gracefully(make_config, tmp_path, reference):
    cfg = make_config(*OPTS)
    path = tmp_path / "run.yaml"
    save_config(cfg, path)
    slow = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(train_cmd(path), env=slow, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    last = run_dir_of(cfg) / "last.pth"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not last.exists():  # epoch 1 is done
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)  # what scancel and preemption do: every process, loader workers too
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "killed by signal" not in out, out
    assert "stopping after the current step" in out
    (run,) = search_cells(cfg.runtime.tracking_uri, cfg.runtime.experiment)
    assert run.status == "KILLED" and last.exists()
    again = launch(cfg, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_clean_run(cfg, reference)


def test_foreign_checkpoint_is_refused_and_changes_nothing(make_config, tmp_path):
    a, b = make_config(*OPTS, folder="a"), make_config(*OPTS, "seed=1", folder="a")
    assert launch(a, tmp_path / "a").returncode == 0
    run_dir_of(b).mkdir(parents=True)
    shutil.copy(run_dir_of(a) / "last.pth", run_dir_of(b) / "last.pth")
    (run_a,) = search_cells(a.runtime.tracking_uri, a.runtime.experiment)
    refused = launch(b, tmp_path / "a")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "belongs to cell" in refused.stderr and run_a.cell_hash[:10] in refused.stderr
    runs = search_cells(a.runtime.tracking_uri, a.runtime.experiment)
    assert [(r.run_id, r.status, r.end_time) for r in runs] == [(run_a.run_id, "FINISHED", run_a.end_time)]


def test_corrupt_checkpoint_is_moved_aside_and_the_cell_finishes(make_config, tmp_path, reference):
    cfg = make_config(*OPTS)
    assert launch(cfg, tmp_path, "metrics_logged:2").returncode == -signal.SIGKILL
    last = run_dir_of(cfg) / "last.pth"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    again = launch(cfg, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "moved it to last.pth.corrupt-" in again.stdout
    assert list(run_dir_of(cfg).glob("last.pth.corrupt-*"))
    assert_one_clean_run(cfg, reference)


def test_lost_store_gives_a_new_run_with_every_epoch(make_config, tmp_path, reference):
    cfg = make_config(*OPTS)
    assert launch(cfg, tmp_path, "checkpoint_renamed:1").returncode == -signal.SIGKILL
    (tmp_path / "mlflow.db").unlink()  # the store is gone; the checkpoint of epoch 1 remains
    again = launch(cfg, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "is not in" in again.stdout and "a new run continues from the checkpoint" in again.stdout
    assert_one_clean_run(cfg, reference)  # epoch 1's metrics came back from the checkpoint's history


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs (root only): too small for the run's checkpoints."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs under CI: {done.stderr!r}")
        pytest.skip(f"mounting a tmpfs needs root: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_leaves_the_run_resumable(make_config, tmp_path, small_disk, reference):
    cfg = make_config(*OPTS, f"runtime.output_dir={small_disk / 'runs'}")
    full = launch(cfg, tmp_path)
    assert full.returncode == 75, full.stdout + full.stderr
    assert "the disk is full" in full.stderr and "Traceback" not in full.stderr
    (run,) = search_cells(cfg.runtime.tracking_uri, cfg.runtime.experiment)
    assert run.status == "KILLED" and "disk is full" in run.tags.get("semiseg.error", "")
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = launch(cfg, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_clean_run(cfg, reference)


def test_read_only_folder_is_a_clear_error_then_resumes(make_config, tmp_path, small_disk, reference):
    cfg = make_config(*OPTS, f"runtime.output_dir={small_disk / 'runs'}")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    refused = launch(cfg, tmp_path)
    assert refused.returncode == 75, refused.stdout + refused.stderr
    assert "read-only" in refused.stderr.lower() and "Traceback" not in refused.stderr
    assert all(r.status != "RUNNING" for r in search_cells(cfg.runtime.tracking_uri, cfg.runtime.experiment))
    subprocess.run(["mount", "-o", "remount,rw,size=64m", str(small_disk)], check=True)
    again = launch(cfg, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_one_clean_run(cfg, reference)


def test_checkpoints_are_readable_by_the_group(make_config, tmp_path):
    cfg = make_config(*OPTS)
    old = os.umask(0o002)
    try:
        assert launch(cfg, tmp_path).returncode == 0
    finally:
        os.umask(old)
    for name in ("last.pth", "best.pth"):
        assert (run_dir_of(cfg) / name).stat().st_mode & 0o040, name
