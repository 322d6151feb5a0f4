"""Every registered method trains data-parallel (two gloo processes on the demo data) as one model.

One pair of processes (``tests/ddp_worker.py``) trains every method in turn through the engine, so imports and
the MLflow store are set up once. Each test then checks one run: a single FINISHED MLflow run; every
grad-enabled forward went through the DDP wrapper (an extra pass on the bare module would skip the gradient
all-reduce and SyncBatchNorm); the ranks saw different data (different losses) yet end with exactly the same
parameters and BN statistics, and the same method state (EMA teacher, PrevMatch snapshots, CorrMatch's τ).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semiseg.config import config_hash, save_config
from semiseg.data.demo_ood import ensure_demo_ood
from semiseg.methods import METHODS
from semiseg.tracking import search_cells
from conftest import small_config

REPO = Path(__file__).resolve().parents[1]
ONE = "train.epochs=1"  # 2 steps; the PrevMatch methods train 2 epochs so a snapshot is taken and used
#: DINOv2-S at crop 28 (2×2 patches), evaluated on a central 28×28 crop to stay fast
V2 = ("model.backbone=dinov2_small", "data.crop_size=28", "train.batch_size=2", "optim.name=adamw",
      "optim.lr=0.0001", "optim.lr_multi=40", "optim.weight_decay=0.01", "eval.mode=center_crop", ONE)
SPEED = ("train.amp=bf16", "speed.sync_every=2", "speed.stop_check_every=2")
#: run name -> overrides of the small demo config (train.gpus=2 added); every registered method at least once
RUNS = {
    "supervised": ("method=supervised", ONE),
    "fixmatch": ("method=fixmatch", ONE),
    "unimatch": ("method=unimatch", ONE),
    "fixmatch_v2": ("method=fixmatch_v2", *V2),
    "unimatch_v2": ("method=unimatch_v2", *V2),
    "prevmatch": ("method=prevmatch",),  # snapshot after epoch 1 on a new best (> 0) val mIoU of both shards
    "corrmatch": ("method=corrmatch", ONE),
    "semiovs_unimatch": ("method=semiovs_unimatch", ONE),
    "semiovs_prevmatch": ("method=semiovs_prevmatch", "prevmatch.snapshot_on=interval"),
    "unimatch_accum2": ("method=unimatch", "train.accum_steps=2", "train.max_iters_per_epoch=4", ONE),  # no_sync
    # the speed options on both families (speed.compile: checked by hand, inductor is too slow for the suite)
    "unimatch_speed": ("method=unimatch", *SPEED, "speed.channels_last=true", "speed.optimizer_impl=foreach", ONE),
    "unimatch_v2_speed": ("method=unimatch_v2", *V2, *SPEED, "speed.optimizer_impl=fused"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, demo_root):
    """Train every run of RUNS with 2 processes; returns (folder, configs by name, combined output)."""
    tmp = tmp_path_factory.mktemp("ddp")
    ensure_demo_ood(demo_root.parent / f"{demo_root.name}_ood")  # generated once here, not by both ranks at once
    configs = {name: small_config(tmp, demo_root, "train.gpus=2", *overrides) for name, overrides in RUNS.items()}
    args = []
    for name, cfg in configs.items():
        save_config(cfg, tmp / f"{name}.yaml")
        args.append(f"{name}={tmp / f'{name}.yaml'}")
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, str(REPO / "tests" / "ddp_worker.py"), str(tmp), *args],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    return tmp, configs, "\n".join(f"--- rank {r} (exit {p.returncode})\n{o[-6000:]}"
                                   for r, (p, o) in enumerate(zip(procs, outs)))


def assert_identical(a, b, where: str = "") -> None:
    """Exact equality of nested dicts / lists of tensors and numbers."""
    if torch.is_tensor(a):
        assert torch.equal(a, b), f"{where} differs between the ranks"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a} != {b}"


def test_every_registered_method_has_a_run():
    shipped = {name for name in METHODS.names() if METHODS.get(name).__module__.startswith("semiseg.")}
    assert shipped and shipped <= {overrides[0].split("=")[1] for overrides in RUNS.values()}


@pytest.mark.parametrize("name", list(RUNS))
def test_method_trains_data_parallel_as_one_model(ddp_runs, name):
    tmp, configs, output = ddp_runs
    paths = [tmp / f"{name}.rank{r}.pt" for r in (0, 1)]
    assert all(p.exists() for p in paths), f"{name} did not finish on both ranks:\n{output}"
    r0, r1 = (torch.load(p, weights_only=False) for p in paths)
    cfg = configs[name]
    (run,) = search_cells(cfg.runtime.tracking_uri, "tests", [config_hash(cfg)])  # one run for both ranks
    assert run.status == "FINISHED"
    for r in (r0, r1):
        assert r["wrapped"] == "DistributedDataParallel"
        assert r["forwards"]["module"] == r["forwards"]["wrapper"] > 0, r["forwards"]  # no pass bypasses DDP
    steps = cfg.train.epochs * cfg.train.max_iters_per_epoch // cfg.train.accum_steps
    assert len(r0["losses"]) == len(r1["losses"]) == steps
    assert r0["losses"][0] != r1["losses"][0]  # each rank trained on its own shard: only the all-reduce agrees
    assert_identical(r0["init"], r1["init"], "initial model")
    changed = [k for k, v in r0["model"].items() if v.is_floating_point() and not torch.equal(v, r0["init"][k])]
    assert len(changed) > len(r0["model"]) // 2, "the model barely trained"
    assert_identical(r0["model"], r1["model"], "model")  # every parameter and BN statistic, exactly
    assert_identical(r0["method"], r1["method"], "method state")
    method = cfg.method
    if method.endswith("_v2"):
        assert not torch.equal(r0["method"]["ema"]["head.output.2.weight"], r0["model"]["head.output.2.weight"])
    if "prevmatch" in method:
        assert len(r0["method"]["snapshots"]) == 1
    if method == "corrmatch":
        assert r0["method"]["thresh"] != cfg.corrmatch.thresh_init


def test_the_runs_raise_no_deprecation_warnings(ddp_runs):
    output = ddp_runs[2]
    assert "FutureWarning" not in output and "DeprecationWarning" not in output, output
