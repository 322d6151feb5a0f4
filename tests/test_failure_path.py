"""The failure path always leaves a resumable state: with the tracking store locked at the moment of a
SIGTERM, the checkpoint is still written (it comes first, and the store's error stays a warning), and the
relaunch resumes into one FINISHED run."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from semiseg.checkpoint import load_training
from semiseg.config import save_config
from semiseg.runfiles import read_json
from semiseg.runtime import run_dir_of
from semiseg.tracking import search_cells


def test_sigterm_with_the_store_locked_still_checkpoints_then_resumes(make_config, tmp_path):
    cfg = make_config("method=supervised", "train.epochs=2", "train.max_iters_per_epoch=400", "data.sup_nsample=1600")
    path = tmp_path / "run.yaml"
    save_config(cfg, path)
    cmd = [sys.executable, "-m", "semiseg.train", "--config", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    progress = run_dir_of(cfg) / "progress.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and read_json(progress).get("epoch", 0) < 1:
        time.sleep(0.05)
    time.sleep(0.5)  # well inside epoch 2
    store = sqlite3.connect(tmp_path / "mlflow.db", isolation_level=None, timeout=30)
    store.execute("BEGIN EXCLUSIVE")  # the store refuses every reader and writer now
    try:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=180)[0]
    finally:
        store.execute("ROLLBACK")
        store.close()
    assert proc.returncode == 130, out
    assert "warning: MLflowLogging could not record" in out, out
    ckpt = load_training(run_dir_of(cfg) / "last.pth")
    assert ckpt["state"]["epoch"] == 1 and ckpt["state"]["epoch_iter"] > 0  # the stop's own checkpoint

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed from" in again.stdout and f"iteration {ckpt['state']['epoch_iter']} of epoch 2" in again.stdout
    runs = search_cells(cfg.runtime.tracking_uri, cfg.runtime.experiment)
    assert [r.status for r in runs] == ["FINISHED"]
