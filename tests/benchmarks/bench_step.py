"""Time training steps of a method (forwards, losses, backward, optimizer step, EMA update), its FLOPs and memory.

Runs the real trainer step on synthetic batches shaped as the loaders give them (uint8 images and masks,
normalised on the device by the trainer; CutMix boxes of the configured crop), so it needs no dataset.

One setting (the default) times the configuration as given. ``--compare`` times two settings of the same
model, weights and batches in one process, their steps interleaved, so the machine's load hits both alike:

* ``official``: the paper recipe as the official code runs it: fp32, no channels-last, no compile, torch's
  default optimizer kernels, and the official loop's host syncs (every logged value ``.item()``-ed twice per
  step, for its AverageMeter and its TensorBoard writer; the EMA teacher updated by a per-parameter loop).
* ``speed``: the named speed options (``train.amp=auto``: bf16 where the device runs it natively, else fp32;
  ``speed.tf32``, ``speed.channels_last`` for
  convolutional encoders, ``speed.optimizer_impl`` fused on CUDA / foreach on CPU, ``speed.sync_every``;
  ``--compile`` adds ``speed.compile``; ``--speed-set KEY=VALUE`` changes any of them).

Both settings start from the same initial weights and see the same batches and the same random draws per
step, so their loss after K steps shows whether the speed options train alike. It prints per setting the
step time, images/s, peak memory and TFLOP/s (FLOPs of one step counted by torch's FLOP counter), then the
ratio; the last line is JSON. Examples:

    python tests/benchmarks/bench_step.py --compare --method unimatch --backbone resnet101 --crop 321 --batch 8 \\
        --steps 200 --device cuda
    python tests/benchmarks/bench_step.py --compare --method unimatch --backbone tiny --crop 64 --batch 2 \\
        --classes 6 --steps 10 --device cpu --set model.output_stride=8
    python tests/benchmarks/bench_step.py --method unimatch_v2 --backbone dinov2_small --crop 56 --batch 2 --steps 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from semiseg.cli import run_cli
from semiseg.config import RunConfig, apply_overrides, config_from_dict
from semiseg.data.sampling import TrainData
from semiseg.data.transforms import cutmix_box
from semiseg.distributed import unwrap
from semiseg.losses import ema_ratio
from semiseg.methods import METHODS
from semiseg.models import build_model, count_parameters
from semiseg.optim import build_optimizer
from semiseg.precision import cpu_bf16_native, isa_cap
from semiseg.protocol import EvalProtocol
from semiseg.speed import configure_backends, prepare_model
from semiseg.trainer import Trainer

#: encoders made of convolutions, for which the speed setting turns channels-last on
CONV_ENCODERS = ("tiny", "resnet50", "resnet101", "xception65")


def synthetic_batches(streams: tuple[str, ...], batch: int, crop: int, classes: int, count: int,
                      pin: bool) -> list[dict]:
    """``count`` batches per stream with the loaders' keys and dtypes (uint8 images and masks, bool boxes)."""
    rng = np.random.default_rng(0)

    def boxes() -> torch.Tensor:
        return torch.from_numpy(np.stack([cutmix_box(crop, rng) for _ in range(batch)])).bool()

    def image() -> torch.Tensor:
        return torch.from_numpy(rng.integers(0, 256, (batch, 3, crop, crop), dtype=np.uint8))

    def one() -> dict:
        out = {"labeled": {"img": image(),
                           "mask": torch.from_numpy(rng.integers(0, classes, (batch, crop, crop), dtype=np.uint8))}}
        for name in ("unlabeled", "mix"):
            out[name] = {"w": image(), "s1": image(), "s2": image(),
                         "ign": torch.zeros(batch, crop, crop, dtype=torch.uint8), "box1": boxes(), "box2": boxes()}
        return {name: {k: v.pin_memory() if pin else v for k, v in part.items()}
                for name, part in out.items() if name in streams}

    return [one() for _ in range(count)]


def official_ema_update(ema: torch.nn.Module, model: torch.nn.Module, alpha: float) -> None:
    """The official V2 loop's EMA update: one multiply-add per parameter and per buffer."""
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.copy_(p_ema * alpha + p.detach() * (1 - alpha))
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b_ema * alpha + b.detach() * (1 - alpha))


@dataclass
class Setting:
    """One configuration under test: its trainer and what was measured of it."""

    name: str
    cfg: RunConfig
    trainer: Trainer
    official_loop: bool
    times: list[float] = field(default_factory=list)
    losses: list[torch.Tensor] = field(default_factory=list)
    peak_bytes: int = 0

    def step(self, batch: dict) -> None:
        trainer = self.trainer
        out = trainer.run_step(batch)
        trainer.state.iteration += 1
        if self.official_loop:  # AverageMeter.update(v.item()) and writer.add_scalar(v.item()) per logged value
            for value in (out.loss, *out.terms.values()):
                for _ in range(2):
                    value.item()
        self.losses.append(out.loss.detach())


def build_setting(name: str, base: dict, overrides: list[str], classes: int, official_loop: bool) -> Setting:
    cfg = config_from_dict(apply_overrides(base, overrides))
    device = torch.device(cfg.runtime.device)
    configure_backends(cfg, device)
    torch.manual_seed(0)  # both settings start from the same weights
    method_cls = METHODS.get(cfg.method)
    model = prepare_model(build_model(cfg, classes, **method_cls.model_kwargs).to(device), cfg)
    method = method_cls(cfg, model)
    if official_loop and hasattr(method, "ema"):
        method.after_step = lambda it: official_ema_update(method.ema, method.model, ema_ratio(it, cfg.ema.decay))
    data = TrainData({}, None, 1 << 30, classes, (), 0, 0, Path("."), EvalProtocol())
    optimizer = build_optimizer(unwrap(model), cfg.optim, impl=cfg.speed.optimizer_impl)
    return Setting(name, cfg, Trainer(cfg, model, method, data, optimizer, device, hooks=[]), official_loop)


def count_step_flops(setting: Setting, batch: dict) -> int:
    """FLOPs of one training step of ``setting`` (forwards and backward), counted by torch; the step is taken."""
    with FlopCounterMode(display=False) as counter:
        setting.step(batch)
    return counter.get_total_flops()


def speed_overrides(backbone: str, device: str, compile_model: bool) -> list[str]:
    """The speed setting's options for this encoder and device (before ``--speed-set``)."""
    options = ["train.amp=auto", f"speed.optimizer_impl={'fused' if device == 'cuda' else 'foreach'}",
               "speed.sync_every=10", "speed.stop_check_every=10"]
    if device == "cuda":
        options.append("speed.tf32=true")
    if backbone in CONV_ENCODERS:
        options.append("speed.channels_last=true")
    if compile_model:
        options.append("speed.compile=true")
    return options


def hardware_facts() -> dict:
    """What a step time depends on: the CPU capability torch dispatches to, the oneDNN ISA cap, native bf16
    (what ``train.amp=auto`` resolves by), thread count and GPU."""
    native, why = cpu_bf16_native()
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "onednn_max_cpu_isa": isa_cap(),
            "cpu_native_bf16": native, "cpu_bf16_detail": why, "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else ""}


def summary(setting: Setting, flops: int, images_per_step: int, last: int) -> dict:
    median = statistics.median(setting.times)
    losses = [float(v) for v in setting.losses]
    out = {"setting": setting.name, "amp": setting.trainer.amp, "step_s_median": round(median, 4),
           "step_s_mean": round(statistics.mean(setting.times), 4), "images_per_s": round(images_per_step / median, 2),
           "tflops_per_s": round(flops / median / 1e12, 4), "loss_first": round(losses[0], 4),
           f"loss_last{last}_mean": round(statistics.mean(losses[-last:]), 4), "loss_curve": [round(v, 4)
                                                                                             for v in losses]}
    if setting.peak_bytes:
        out["peak_allocated_GiB"] = round(setting.peak_bytes / 2**30, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="unimatch_v2", help="registered method (default unimatch_v2)")
    parser.add_argument("--backbone", default="dinov2_base", help="registered encoder (default dinov2_base)")
    parser.add_argument("--crop", type=int, default=518, help="square crop size (default 518)")
    parser.add_argument("--batch", type=int, default=4, help="per-stream batch size, labeled = unlabeled (default 4)")
    parser.add_argument("--amp", default="off", choices=["off", "auto", "bf16", "fp16"],
                        help="autocast of the single setting (without --compare)")
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--classes", type=int, default=21, help="number of classes (default 21, Pascal)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2; the first one's FLOPs "
                                                              "are counted)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config value of every setting, e.g. --set optim.name=adamw (repeatable)")
    parser.add_argument("--compare", action="store_true", help="time the official and the speed setting "
                                                               "side by side (see above)")
    parser.add_argument("--compile", action="store_true", help="--compare: the speed setting also compiles the model")
    parser.add_argument("--speed-set", dest="speed_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="--compare: a config value of the speed setting only (repeatable)")
    parser.add_argument("--last", type=int, default=0, help="the loss is reported as the mean of the last N steps "
                                                            "(default: a tenth of --steps, at least 1)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    if args.warmup < 1:
        print("error: --warmup must be at least 1 (the first step's FLOPs are counted)", file=sys.stderr)
        return 2
    adamw = args.method.endswith("_v2")
    base = {"method": args.method, "model": {"backbone": args.backbone}, "data": {"crop_size": args.crop},
            "optim": {"name": "adamw" if adamw else "sgd", "lr": 5e-6 if adamw else 1e-3,
                      "lr_multi": 40.0 if adamw else 10.0, "weight_decay": 0.01 if adamw else 1e-4},
            "train": {"batch_size": args.batch}, "runtime": {"device": args.device}}
    if args.compare:
        plans = [("official", args.overrides, True),
                 ("speed", args.overrides + speed_overrides(args.backbone, args.device, args.compile)
                  + args.speed_overrides, False)]
    else:
        plans = [("as given", args.overrides + [f"train.amp={args.amp}"], False)]
    settings = [build_setting(name, base, overrides, args.classes, official) for name, overrides, official in plans]
    device = settings[0].trainer.device
    streams = settings[0].trainer.method.streams
    batches = synthetic_batches(streams, args.batch, args.crop, args.classes, 4, pin=device.type == "cuda")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    flops = 0
    for i in range(args.warmup + args.steps):
        for setting in settings:
            torch.manual_seed(1000 + i)  # the same random draws (dropout, CutMix choices) in both settings
            batch = batches[i % len(batches)]
            if i == 0:  # untimed; the arithmetic is the same in every setting: the first one's count stands
                if setting is settings[0]:
                    flops = count_step_flops(setting, batch)
                else:
                    setting.step(batch)
                continue
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync()
            start = time.perf_counter()
            setting.step(batch)
            sync()
            if i >= args.warmup:
                setting.times.append(time.perf_counter() - start)
                if device.type == "cuda":
                    setting.peak_bytes = max(setting.peak_bytes, torch.cuda.max_memory_allocated())

    images_per_step = args.batch * len(streams)
    last = args.last or max(1, args.steps // 10)
    rows = [summary(s, flops, images_per_step, last) for s in settings]
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} thread(s)"
    model = settings[0].trainer.model
    hardware = hardware_facts()
    print("hardware: " + ", ".join(f"{k} {v}" for k, v in hardware.items() if v))
    print(f"{args.method} {args.backbone} crop {args.crop} batch {args.batch}x{len(streams)} streams on {where}, "
          f"{count_parameters(model) / 1e6:.2f}M parameters, {flops / 1e9:.1f} GFLOP/step, {args.steps} timed steps")
    for row in rows:
        memory = f", peak {row['peak_allocated_GiB']} GiB allocated" if "peak_allocated_GiB" in row else ""
        print(f"  {row['setting']:>8}: {row['step_s_median'] * 1000:9.1f} ms/step  {row['images_per_s']:8.1f} img/s  "
              f"{row['tflops_per_s']:7.3f} TFLOP/s{memory}  loss {row['loss_first']:.4f} -> "
              f"{row[f'loss_last{last}_mean']:.4f} (mean of the last {last})")
    result = {"method": args.method, "backbone": args.backbone, "crop": args.crop, "batch": args.batch,
              "device": where, "parameters_M": round(count_parameters(model) / 1e6, 2), "gflop_per_step":
              round(flops / 1e9, 2), "steps": args.steps, "hardware": hardware, "settings": rows}
    if args.compare:
        result["speedup"] = round(rows[0]["step_s_median"] / rows[1]["step_s_median"], 3)
        print(f"  ratio official/speed: {result['speedup']:.2f}x")
    else:  # the single setting's figures at the top level, as before
        result.update({k: v for k, v in rows[0].items() if k != "loss_curve"})
        result["loss"] = rows[0][f"loss_last{last}_mean"]
    if device.type != "cuda":
        result["peak_rss_GiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
