"""Time one training step of a method (forwards, losses, backward, optimizer step, EMA update) and its peak memory.

Runs the real trainer step on a synthetic batch (random images, masks and CutMix boxes of the configured crop),
so it needs no dataset. Examples:

    python tests/benchmarks/bench_step.py --method unimatch_v2 --backbone dinov2_base --crop 518 --batch 4 \\
        --amp bf16 --device cuda
    python tests/benchmarks/bench_step.py --method unimatch_v2 --backbone dinov2_small --crop 56 --batch 2 --steps 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semiseg.cli import run_cli
from semiseg.config import apply_overrides, config_from_dict
from semiseg.data.sampling import TrainData
from semiseg.data.transforms import cutmix_box
from semiseg.protocol import EvalProtocol
from semiseg.methods import METHODS
from semiseg.models import build_model, count_parameters
from semiseg.optim import build_optimizer
from semiseg.trainer import Trainer


def synthetic_batch(streams: tuple[str, ...], batch: int, crop: int, classes: int, device: torch.device,
                    rng: np.random.Generator) -> dict:
    """One batch per stream with the loaders' keys and dtypes (labeled: img/mask; unlabeled, mix: views)."""
    def boxes() -> torch.Tensor:
        return torch.from_numpy(np.stack([cutmix_box(crop, rng) for _ in range(batch)])).bool()

    def image() -> torch.Tensor:
        return torch.randn(batch, 3, crop, crop)

    out = {"labeled": {"img": image(), "mask": torch.randint(0, classes, (batch, crop, crop))}}
    for name in ("unlabeled", "mix"):
        if name in streams:
            out[name] = {"w": image(), "s1": image(), "s2": image(),
                         "ign": torch.zeros(batch, crop, crop, dtype=torch.long), "box1": boxes(), "box2": boxes()}
    return {name: {k: v.to(device) for k, v in part.items()} for name, part in out.items() if name in streams}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="unimatch_v2", help="registered method (default unimatch_v2)")
    parser.add_argument("--backbone", default="dinov2_base", help="registered encoder (default dinov2_base)")
    parser.add_argument("--crop", type=int, default=518, help="square crop size (default 518)")
    parser.add_argument("--batch", type=int, default=4, help="per-stream batch size, labeled = unlabeled (default 4)")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"], help="autocast on CUDA")
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--classes", type=int, default=21, help="number of classes (default 21, Pascal)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra config value, e.g. --set optim.name=adamw (repeatable)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    adamw = args.method.endswith("_v2")
    cfg = config_from_dict(apply_overrides({
        "method": args.method, "model": {"backbone": args.backbone}, "data": {"crop_size": args.crop},
        "optim": {"name": "adamw" if adamw else "sgd", "lr": 5e-6 if adamw else 1e-3,
                  "lr_multi": 40.0 if adamw else 10.0, "weight_decay": 0.01 if adamw else 1e-4},
        "train": {"batch_size": args.batch, "amp": args.amp}, "runtime": {"device": args.device}}, args.overrides))
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    method_cls = METHODS.get(cfg.method)
    model = build_model(cfg, args.classes, **method_cls.model_kwargs).to(device)
    method = method_cls(cfg, model)
    data = TrainData({}, None, args.warmup + args.steps, args.classes, (), 0, 0, Path("."), EvalProtocol())
    trainer = Trainer(cfg, model, method, data, build_optimizer(model, cfg.optim), device, hooks=[])
    rng = np.random.default_rng(0)
    batches = [synthetic_batch(method.streams, args.batch, args.crop, args.classes, device, rng) for _ in range(2)]

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    for i in range(args.warmup + args.steps):
        if i == args.warmup and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync()
        start = time.perf_counter()
        out = trainer.run_step(batches[i % 2])
        trainer.state.iteration += 1
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    result = {"method": args.method, "backbone": args.backbone, "crop": args.crop, "batch": args.batch,
              "amp": args.amp if device.type == "cuda" else "off (CPU)", "device": torch.cuda.get_device_name()
              if device.type == "cuda" else "cpu", "parameters_M": round(count_parameters(model) / 1e6, 2),
              "step_s_median": round(statistics.median(times), 4), "step_s_mean": round(statistics.mean(times), 4),
              "steps": len(times), "loss": round(float(out.loss.detach()), 4)}
    if device.type == "cuda":
        result["peak_allocated_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result["peak_reserved_GiB"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    else:
        result["peak_rss_GiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(f"{args.method} {args.backbone} crop {args.crop} batch {args.batch}+{args.batch} amp {result['amp']} "
          f"on {result['device']}: {result['step_s_median'] * 1000:.1f} ms/step (median of {len(times)}), peak "
          + (f"{result['peak_allocated_GiB']} GiB allocated / {result['peak_reserved_GiB']} GiB reserved"
             if device.type == "cuda" else f"RSS {result['peak_rss_GiB']} GiB"))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
