"""Data-parallel training on CPU (gloo, two real processes), the DDP settings, sharding, LR scaling, SLURM shapes."""

import os
import socket
import subprocess
import sys
import warnings

import pytest
import torch
import torch.distributed as dist
from torch import nn

from semiseg.experiments.registry import expand, load_experiment
from semiseg.launch.plan import PlannedCell
from semiseg.launch.slurm import describe, load_profile
from semiseg.config import effective_lr, save_config
from semiseg import distributed
from semiseg.data.sampling import EpochSampler, stream_list
from semiseg.distributed import world_from_env
from semiseg.errors import ConfigError
from semiseg.tracking import search_cells


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_run_with_the_scaled_lr(tmp_path, make_config):
    cfg = make_config("train.gpus=2", "optim.reference_batch=4", "method=fixmatch")
    path = tmp_path / "run.yaml"
    save_config(cfg, path)
    base = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
            "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "semiseg.train", "--config", str(path)],
                              env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "2 process(es), lr 0.02" in outs[0] and "it/epoch" not in outs[1]  # rank 0 speaks for the run
    (run,) = search_cells(cfg.runtime.tracking_uri, "tests")  # one MLflow run for both processes
    from semiseg.tracking import _client

    params = _client(cfg.runtime.tracking_uri).get_run(run.run_id).data.params
    assert run.status == "FINISHED"
    assert params["derived.world_size"] == "2" and params["derived.global_batch"] == "8"
    assert float(params["derived.effective_lr"]) == pytest.approx(0.02) and params["optim.lr"] == "0.01"


def test_wrap_sets_up_ddp_deliberately_and_without_warnings():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    assert distributed.wrap(model, torch.device("cpu"), sync_bn=True) is model  # no process group: unchanged
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ddp = distributed.wrap(model, torch.device("cpu"), sync_bn=True)
        assert not [str(w.message) for w in caught]
        assert isinstance(ddp, nn.parallel.DistributedDataParallel) and distributed.unwrap(ddp) is model
        assert ddp.gradient_as_bucket_view and not ddp.broadcast_buffers and not ddp.find_unused_parameters
        assert not any(isinstance(m, nn.SyncBatchNorm) for m in ddp.modules())  # SyncBatchNorm is GPU-only
        x = torch.randn(2, 3, 4, 4)
        assert torch.equal(distributed.all_gather_cat(x), x)  # a world of one
        ddp(x).sum().backward()
        assert ddp.module[0].weight.grad is not None
    finally:
        dist.destroy_process_group()


def test_world_must_match_train_gpus(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert world_from_env(2).rank == 1
    with pytest.raises(ConfigError, match="train.gpus is 4 .* world of 2"):
        world_from_env(4)
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ConfigError, match="needs N processes"):
        world_from_env(2)


def test_ranks_share_each_epoch_without_overlap():
    items = stream_list(10, 21, truncate=False)
    full = list(EpochSampler(items, seed=3, stream=1))
    shards = [list(EpochSampler(items, seed=3, stream=1, rank=r, world=3)) for r in range(3)]
    assert [len(s) for s in shards] == [7, 7, 7]
    assert sorted(sum(shards, [])) == sorted(full)
    late = EpochSampler(items, seed=3, stream=1, rank=1, world=3)
    late.set_epoch(0, start=4)
    assert list(late) == shards[1][4:]


def test_lr_follows_the_global_batch(make_config):
    assert effective_lr(make_config("optim.reference_batch=16", "train.gpus=2", "train.batch_size=4")) == \
        pytest.approx(0.005)
    assert effective_lr(make_config("optim.reference_batch=0", "train.batch_size=4")) == pytest.approx(0.01)


def test_one_job_array_per_resource_shape(tmp_path):
    exp = load_experiment("demo")
    cells = expand(exp, {"method": ["unimatch"]}) + expand(exp, {"method": ["fixmatch"]}, ["train.gpus=2"])
    todo = [PlannedCell(c, "new", None, tmp_path / c.short) for c in cells]
    text = describe(todo, load_profile("example_gpu", {"time_min": 90}, ["array_parallelism=1"]), tmp_path, "demo")
    arrays = text.split("--- job array")[1:]
    assert len(arrays) == 2
    one, two = sorted(arrays, key=lambda a: "ntasks-per-node=2" in a)
    assert "#SBATCH --array=0-1%1" in one and "#SBATCH --gpus-per-node=1" in one
    assert "#SBATCH --ntasks-per-node=2" in two and "#SBATCH --gpus-per-node=2" in two
    for a in arrays:
        assert "#SBATCH --time=90" in a and "#SBATCH --partition=gpu" in a and "#SBATCH --account=my_project" in a
        assert "#SBATCH --mail-type=FAIL" in a and "module load cuda/12.4" in a
    with pytest.raises(ConfigError, match="unknown cluster key 'gpus'"):
        load_profile("local", None, ["gpus=2"])
    with pytest.raises(ConfigError, match="unknown cluster profile 'nope'"):
        load_profile("nope")
    assert load_profile("local")["partition"] == "debug"


def test_max_parallel_is_the_job_arrays_limit(tmp_path, capsys):
    from semiseg.launch import run_grid

    base = ["--exp", "demo", "--backend", "slurm", "--cluster", "local", "--dry-run",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--output-dir", str(tmp_path / "runs")]
    assert run_grid.main(base) == 0
    assert "#SBATCH --array=0-5%2" in capsys.readouterr().out  # the local profile's array_parallelism
    assert run_grid.main(base + ["--max-parallel", "3", "--cluster-set", "array_parallelism=5"]) == 0
    assert "#SBATCH --array=0-5%3" in capsys.readouterr().out
