"""Pretrained weights for the demo's tiny encoder: ``python -m semiseg.pretext [--threads N]``.

Real semi-supervised segmentation starts from an ImageNet-pretrained encoder, and the methods' gains
depend on it: from random init, a handful of labels gives pseudo-labels too poor to learn from. The
demo's stand-in for ImageNet is the generated ``demo_pretext`` set (:data:`semiseg.data.demo.PRETEXT`):
the same kind of scenes with five *other* shapes in other hues, drawn from other random streams, so
the encoder never sees a demo class, label or image. It is trained fully supervised on all 768
pretext images, and its encoder weights are cached in ``data/pretrained/`` (one checkpoint-format
file, written atomically under a lock, so parallel runs train it once). A run config asks for them with
``model.pretrained: demo_pretext``.
"""

from __future__ import annotations

import argparse
import fcntl
import time
from pathlib import Path

import torch

from semiseg.checkpoint import load_checkpoint, save_checkpoint
from semiseg.cli import run_cli
from semiseg.config import config_from_dict
from semiseg.data.sampling import build_data
from semiseg.errors import DataError, UserError
from semiseg.evaluate import evaluate
from semiseg.hooks import Hook, PolyLR
from semiseg.methods import METHODS
from semiseg.models import build_model
from semiseg.optim import build_optimizer
from semiseg.train import pick_device, seed_everything
from semiseg.trainer import Trainer

#: Bump when the recipe or the pretext set changes: the cached file name carries it.
PRETEXT_VERSION = 1
#: The pretraining run: supervised, whole 64-px images (no rescale), the demo model, 40 epochs.
PRETEXT_RUN = {
    "method": "supervised",
    "seed": 0,
    "data": {"dataset": "demo_pretext", "split": "all", "crop_size": 64, "scale_range": [1.0, 1.0]},
    "model": {"backbone": "tiny", "output_stride": 8, "aspp_dilations": [2, 4, 6]},
    "optim": {"name": "adamw", "lr": 0.004, "lr_multi": 1.0, "weight_decay": 0.01},
    "train": {"epochs": 40, "batch_size": 8},
    "runtime": {"num_workers": 0, "device": "cpu"},
}


def default_path() -> Path:
    """Where the weights are cached: ``data/pretrained/`` under the working folder, like the demo data."""
    return Path("data/pretrained") / f"tiny_demo_pretext_v{PRETEXT_VERSION}.pth"


class _EpochLine(Hook):
    def __init__(self, every: int) -> None:
        self.every, self.start = every, time.perf_counter()

    def after_epoch(self, trainer) -> None:
        epoch = trainer.state.epoch
        if epoch % self.every == 0 or epoch == trainer.cfg.train.epochs:
            print(f"pretext epoch {epoch}/{trainer.cfg.train.epochs}: loss {trainer.epoch_terms['loss']:.3f}, "
                  f"{time.perf_counter() - self.start:.0f} s", flush=True)


def pretrain(out: Path, threads: int = 1) -> float:
    """Train the pretext model on CPU with ``threads`` threads and save its encoder to ``out``; returns
    the pretext val mIoU. Deterministic for a given thread count."""
    cfg = config_from_dict({**PRETEXT_RUN, "runtime": {**PRETEXT_RUN["runtime"], "threads": threads}})
    torch.set_num_threads(threads)
    seed_everything(cfg.seed)
    method_cls = METHODS.get(cfg.method)
    data = build_data(cfg, method_cls.streams)
    model = build_model(cfg, data.num_classes)
    device = pick_device(cfg.runtime.device)
    trainer = Trainer(cfg, model, method_cls(cfg, model), data, build_optimizer(model, cfg.optim), device,
                      [PolyLR(), _EpochLine(every=10)])
    trainer.train()
    miou = evaluate(model, data.val_loader, data.num_classes, device, protocol=data.protocol).miou
    save_checkpoint({"state_dict": model.backbone.state_dict(),
                     "pretext": {"version": PRETEXT_VERSION, "val_miou": miou, "run": repr(PRETEXT_RUN)}}, out)
    return miou


def ensure_demo_pretext(path: Path | None = None, threads: int = 1) -> Path:
    """The cached pretext encoder weights, pretrained first (a few CPU minutes) when the file is missing.

    Concurrent callers wait on a lock beside the file; the first one trains, the others then load.
    """
    path = path or default_path()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():  # no other process made it while we waited
            print(f"pretraining the demo encoder on the demo_pretext set ({threads} thread(s)) -> {path}",
                  flush=True)
            miou = pretrain(path, threads)
            print(f"pretext val mIoU {miou:.2f}; saved {path}", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m semiseg.pretext", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the pretraining (default 1)")
    parser.add_argument("--out", type=Path, default=None, help=f"weights file (default {default_path()})")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    out = args.out or default_path()
    check_out(out)
    print(ensure_demo_pretext(out, args.threads))
    return 0


def check_out(out: Path) -> None:
    """Before minutes of pretraining: ``out`` must be writable as a file, and an existing one a pretext file."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the weights file to write, e.g. {out / default_path().name}")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is a file, not a folder")
    if out.is_file():
        try:
            ok = "pretext" in load_checkpoint(out)
        except DataError:
            ok = False
        if not ok:
            raise UserError(f"--out {out} exists and is not a demo_pretext weights file; delete it to pretrain again")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
