"""Steps/s of one method on the demo data with each speed option (docs/speed.md) against the default.

Builds the real (untracked) run assembly per variant, so every option is applied as in a training, and times
``--steps`` trainer steps on loader batches after ``--warmup`` untimed ones. Example (the figures of docs/speed.md):

    python tests/benchmarks/bench_speed_options.py --method unimatch --crop 64 --batch 4 --steps 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from semiseg.cli import run_cli
from semiseg.config import apply_overrides, config_from_dict
from semiseg.data.demo import ensure_demo
from semiseg.runtime import build_trainer

VARIANTS = {"default": [], "channels_last": ["speed.channels_last=true"], "amp bf16": ["train.amp=bf16"],
            "optimizer foreach": ["speed.optimizer_impl=foreach"], "optimizer fused": ["speed.optimizer_impl=fused"],
            "sync_every 10": ["speed.sync_every=10"], "compile": ["speed.compile=true"]}


def step_seconds(base: dict, overrides: list[str], steps: int, warmup: int) -> float:
    trainer = build_trainer(config_from_dict(apply_overrides(base, overrides)), tracked=False)
    trainer.data.set_epoch(0)
    iterators = {name: iter(trainer.data.loaders[name]) for name in trainer.method.streams}
    batches = [{name: next(it) for name, it in iterators.items()} for _ in range(2)]
    trainer.model.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        trainer.run_step(batches[i % 2])
        trainer.state.iteration += 1
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="unimatch")
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile compiles in them)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--variant", dest="variants", action="append", choices=list(VARIANTS),
                        help="measure only these (repeatable; default all)")
    args = parser.parse_args(argv)
    root = ensure_demo(Path(tempfile.gettempdir()) / "semiseg_bench_demo")
    base = {"method": args.method, "seed": 0,
            "data": {"dataset": "demo", "root": str(root), "split": "1_32", "crop_size": args.crop},
            "model": {"backbone": args.backbone}, "optim": {"name": "sgd", "lr": 0.01},
            "train": {"batch_size": args.batch},
            "runtime": {"num_workers": 0, "threads": args.threads, "device": args.device}}
    reference = None
    for name in args.variants or VARIANTS:
        seconds = step_seconds(base, VARIANTS[name], args.steps, args.warmup)
        reference = reference or seconds
        print(f"{name:18s} {1 / seconds:6.2f} steps/s ({seconds * 1000:.1f} ms/step, x{reference / seconds:.2f})",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
