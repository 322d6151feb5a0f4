"""Exact resume on every rank: a 2-process gloo run whose ranks draw different random numbers, killed
(SIGKILL) mid-epoch and relaunched, ends with the weights of an uninterrupted run."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from semiseg.config import save_config
from semiseg.runfiles import FAULT_ENV

from test_distributed import free_port

WORKER = Path(__file__).with_name("rank_rng_worker.py")
# 4 iterations per rank, a checkpoint every 2; the dropout of UniMatch's feature perturbation draws from
# each rank's own CPU generator
RUN = ("train.gpus=2", "train.epochs=1", "train.max_iters_per_epoch=4", "runtime.checkpoint_every_iters=2")


def launch(config: Path, out: Path, fault: str = "") -> list[int]:
    base = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
            "OMP_NUM_THREADS": "1"}
    procs = []
    for rank in (0, 1):
        env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
        if fault and rank == 0:
            env[FAULT_ENV] = fault
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(config), str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            p.kill()
            outs.append(p.communicate()[0])
    codes = [p.returncode for p in procs]
    if not fault:
        assert codes == [0, 0], outs
    return codes


def test_killed_two_process_run_resumes_every_rank_exactly(tmp_path, make_config):
    straight, killed = make_config(*RUN, folder="straight"), make_config(*RUN, folder="killed")
    for cfg, name in ((straight, "straight"), (killed, "killed")):
        save_config(cfg, tmp_path / f"{name}.yaml")
    launch(tmp_path / "straight.yaml", tmp_path / "straight.pt")

    codes = launch(tmp_path / "killed.yaml", tmp_path / "killed.pt", fault="checkpoint_renamed:1")
    assert codes[0] == -9  # SIGKILL right after the checkpoint at iteration 2
    assert not (tmp_path / "killed.pt").exists()
    launch(tmp_path / "killed.yaml", tmp_path / "killed.pt")

    a, b = torch.load(tmp_path / "straight.pt"), torch.load(tmp_path / "killed.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
