"""Train one run: ``python -m semiseg.train --config run.yaml [--set key=value ...]``.

The same entry point runs on a laptop, in a SLURM job or in a Ray worker. A run whose folder
(``<runtime.output_dir>/<hash>``) holds ``last.pth`` resumes from it into the same MLflow run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from semiseg import catalog, distributed
from semiseg.cli import run_cli
from semiseg.config import (RunConfig, effective_lr, global_batch, load_config, short_hash)
from semiseg.data.sampling import build_data
from semiseg.errors import TrainingDiverged, UserError
from semiseg.evaluate import describe_schedule
from semiseg.hooks import (Checkpointing, EpochCallback, EpochFn, Evaluate, MethodEpochEnd, MLflowLogging, PolyLR,
                           Progress)
from semiseg.methods import METHODS
from semiseg.models import build_model, count_parameters
from semiseg.optim import build_optimizer
from semiseg.tracking import RunTracker, cell_tags, git_commit, record_failure
from semiseg.trainer import Trainer, TrainState


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The run's device; on GPUs, data-parallel process ``local_rank`` takes GPU ``local_rank``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from semiseg.errors import ConfigError

        raise ConfigError("runtime.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(name)


def run_dir_of(cfg: RunConfig) -> Path:
    return Path(cfg.runtime.output_dir) / short_hash(cfg)


def run_tags(cfg: RunConfig, extra_tags: dict[str, str] | None = None) -> dict[str, str]:
    """The tags of a run: its cell identity, code version and run folder, then ``extra_tags``."""
    return {**cell_tags(cfg), "semiseg.git_commit": git_commit(), "semiseg.run_dir": str(run_dir_of(cfg).resolve()),
            **(extra_tags or {})}


def record_setup_failure(cfg: RunConfig, extra_tags: dict[str, str] | None, exc: Exception) -> None:
    """Record a run that could not start (missing data, bad weights file, ...) as FAILED with its error, so
    the grid's status shows it. A cell with a checkpoint is left alone: it stays resumable once fixed."""
    run_dir = run_dir_of(cfg)
    if (run_dir / "last.pth").exists() or os.environ.get("RANK", "0") != "0":  # rank 0 reports for all
        return
    run_id = record_failure(cfg.runtime.tracking_uri, cfg.runtime.experiment, f"{type(exc).__name__}: {exc}",
                            run_tags(cfg, extra_tags))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"run_id": run_id}))  # a backend sees the run reported itself


def build_trainer(cfg: RunConfig, extra_tags: dict[str, str] | None = None,
                  callbacks: list[EpochFn] | None = None) -> Trainer:
    """Everything for one run: data, model, method, optimizer, the standard hooks and ``callbacks``.

    Each callback gets ``(epoch, metrics, last_checkpoint_path)`` after every epoch, once the checkpoint
    and the MLflow metrics of that epoch are written (this is how a tuner plugs in).
    """
    catalog.check(cfg)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    world = distributed.world_from_env(cfg.train.gpus)
    device = pick_device(cfg.runtime.device, world.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    distributed.setup(world, device)
    seed_everything(cfg.seed)
    method_cls = METHODS.get(cfg.method)
    data = build_data(cfg, method_cls.streams, world.rank, world.size)  # data errors come before any MLflow run
    model = build_model(cfg, data.num_classes, **method_cls.model_kwargs).to(device)
    model = distributed.wrap(model, world, device, cfg.train.sync_bn)
    method = method_cls(cfg, model)
    optimizer = build_optimizer(distributed.unwrap(model), cfg.optim, effective_lr(cfg))
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    n_params, n_backbone = count_parameters(model), count_parameters(distributed.unwrap(model).backbone)

    tags = run_tags(cfg, {"semiseg.n_labeled": data.n_labeled, **(extra_tags or {})})
    params = {"derived.iters_per_epoch": data.iters_per_epoch,
              "derived.total_iters": data.iters_per_epoch * cfg.train.epochs,
              "derived.n_labeled": data.n_labeled, "derived.n_unlabeled": data.n_unlabeled,
              "derived.parameters": n_params, "derived.parameters_backbone": n_backbone,
              "derived.parameters_head": n_params - n_backbone, "derived.device": str(device),
              "derived.global_batch": global_batch(cfg), "derived.effective_lr": effective_lr(cfg),
              "derived.eval_protocol": describe_schedule(data.protocol, cfg.train.epochs,
                                                         cfg.eval.center_crop_until_last),
              "derived.world_size": world.size,
              "derived.sync_bn": any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())}
    hooks = [PolyLR(), Evaluate(), MethodEpochEnd(), Checkpointing(run_dir, save=world.is_main)]
    if world.is_main:  # one MLflow run and one progress file per training run
        tracker = RunTracker(cfg.runtime.tracking_uri, cfg.runtime.experiment)
        hooks += [MLflowLogging(tracker, run_dir, tags, params),
                  Progress(run_dir, f"{cfg.method}/{cfg.data.split}/s{cfg.seed} {short_hash(cfg)}")]
        hooks += [EpochCallback(fn, run_dir) for fn in callbacks or []]
    trainer = Trainer(cfg, model, method, data, optimizer, device, hooks, agree=distributed.any_rank)
    if world.is_main:
        print(f"{cfg.method} on {cfg.data.dataset}/{cfg.data.split}: {type(distributed.unwrap(model)).__name__} "
              f"{cfg.model.backbone} {n_params / 1e6:.2f}M parameters (encoder {n_backbone / 1e6:.2f}M, head "
              f"{(n_params - n_backbone) / 1e6:.2f}M), {data.iters_per_epoch} it/epoch, device {device}, "
              f"{world.size} process(es), lr {effective_lr(cfg):g}", flush=True)
    return trainer


#: Signals that stop training gracefully: SIGTERM (scancel, preemption) and the USR signals SLURM sends
#: before a time limit (``--signal``). Ctrl-C (SIGINT) still interrupts at once.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


def train(cfg: RunConfig, extra_tags: dict[str, str] | None = None) -> TrainState:
    """Train (or resume) the run described by ``cfg``; a stop signal checkpoints and leaves it resumable."""
    trainers: list[Trainer] = []

    def stop(signum, frame):
        if not trainers:  # still setting up: nothing to save
            raise KeyboardInterrupt(f"signal {signum}")
        if trainers[0].stop_signal is None:
            print(f"signal {signum}: stopping after the current step, with a checkpoint", flush=True)
            trainers[0].request_stop(signum)

    catalog.check(cfg)  # a config error, not a setup failure: nothing is recorded
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)
    try:
        trainers.append(build_trainer(cfg, extra_tags))
    except UserError as exc:
        record_setup_failure(cfg, extra_tags, exc)
        raise
    try:
        return trainers[0].train()
    finally:
        distributed.teardown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m semiseg.train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: python -m semiseg.train --config runs/ab12cd34ef/config.yaml --set train.epochs=2")
    parser.add_argument("--config", required=True, help="run config YAML (see semiseg/config.py for every key)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.lr=0.002 (repeatable)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="extra MLflow tag for the run, e.g. --tag semiseg.exp=demo (repeatable)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    tags = dict(t.split("=", 1) for t in args.tag if "=" in t)
    try:
        state = train(cfg, tags)
    except TrainingDiverged as exc:
        print(f"error: run failed: {exc}", file=sys.stderr)
        return 1
    print(f"best mIoU {state.best_miou:.2f}")
    return 0


def cli() -> int:
    """The ``semiseg-train`` console script."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
