"""Gradient accumulation (train.accum_steps): the update of B × K equals that of B·K, per-step schedules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semiseg.config import config_hash, effective_lr, global_batch
from semiseg.data.sampling import build_data
from semiseg.errors import ConfigError
from semiseg.hooks import Hook, PolyLR
from semiseg.methods import METHODS
from semiseg.optim import build_optimizer, poly_lr
from semiseg.runtime import build_trainer
from semiseg.trainer import Trainer


class NoBatchNorm(nn.Module):
    """A small segmentation net without BatchNorm (micro-batches then see exactly what one batch sees)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x).relu())


def supervised_trainer(cfg, model: nn.Module) -> Trainer:
    data = build_data(cfg, ("labeled",))
    optimizer = build_optimizer(model, cfg.optim, effective_lr(cfg))
    return Trainer(cfg, model, METHODS.get("supervised")(cfg, model), data, optimizer, torch.device("cpu"),
                   [PolyLR()])


def test_batch_b_times_k_updates_like_batch_b_k(make_config):
    """Two SGD steps (momentum, weight decay, poly LR) of one batch of 4 vs two accumulated micro-batches of 2."""
    torch.manual_seed(0)
    whole = supervised_trainer(make_config("method=supervised", "train.batch_size=4"), NoBatchNorm(6))
    split = supervised_trainer(make_config("method=supervised", "train.batch_size=2", "train.accum_steps=2",
                                           "train.max_iters_per_epoch=4", folder="k"), NoBatchNorm(6))
    split.model.load_state_dict(whole.model.state_dict())
    init = {k: v.clone() for k, v in whole.model.state_dict().items()}
    assert global_batch(whole.cfg) == global_batch(split.cfg) == 4 and whole.total_iters == split.total_iters
    loader = iter(whole.data.loaders["labeled"])
    for _ in range(2):
        batch = next(loader)
        batch["mask"] = batch["mask"].clamp(max=5)  # no ignore pixels: every image weighs the same in the mean
        halves = [{"labeled": {k: v[i:i + 2] for k, v in batch.items()}} for i in (0, 2)]
        out_whole = whole.run_step({"labeled": batch})
        out_split = split.run_step(*halves)
        for trainer in (whole, split):
            trainer.state.iteration += 1
            trainer._call("after_step", None)
        assert float(out_split.loss) == pytest.approx(float(out_whole.loss.detach()), abs=1e-6)
    for (name, a), b in zip(whole.model.named_parameters(), split.model.parameters()):
        assert not torch.equal(a, init[name]), name
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)
    assert whole.optimizer.param_groups[0]["lr"] == split.optimizer.param_groups[0]["lr"] < whole.cfg.optim.lr


class Capture(Hook):
    def __init__(self):
        self.steps = []

    def after_step(self, trainer, out):
        self.steps.append(({k: v.clone() for k, v in trainer.model.state_dict().items()},
                           {k: v.clone() for k, v in trainer.method.ema.state_dict().items()},
                           trainer.optimizer.param_groups[0]["lr"]))


def test_ema_and_lr_advance_per_optimizer_step(make_config):
    cfg = make_config("method=fixmatch_v2", "train.accum_steps=2", "train.max_iters_per_epoch=4", "train.epochs=1",
                      "ema.decay=0.9")
    trainer = build_trainer(cfg)
    capture = Capture()
    trainer.hooks.append(capture)
    trainer.train_epoch()
    assert trainer.state.iteration == trainer.total_iters == 2  # 4 micro-batches, 2 optimizer steps
    (s0, e0, lr0), (s1, e1, lr1) = capture.steps
    for key in s0:
        if s0[key].is_floating_point():
            assert torch.equal(e0[key], s0[key]), key  # step 0: α = 0
            torch.testing.assert_close(e1[key], 0.5 * e0[key] + 0.5 * s1[key])  # step 1: α = 1 − 1/2
    assert [lr0, lr1] == pytest.approx([poly_lr(cfg.optim.lr, it, 2, cfg.optim.poly_power) for it in (0, 1)])


def test_accumulation_is_counted_and_checked(make_config):
    base = make_config()
    assert config_hash(make_config("train.accum_steps=1")) == config_hash(base)  # default: hashes unchanged
    cfg = make_config("train.accum_steps=4", "optim.reference_batch=8")
    assert global_batch(cfg) == 16 and effective_lr(cfg) == pytest.approx(2 * cfg.optim.lr)
    with pytest.raises(ConfigError, match="train.accum_steps': 3 .* epoch has 2 batches"):
        build_trainer(make_config("train.accum_steps=3"))
    with pytest.raises(ConfigError, match="accum_steps"):
        make_config("train.accum_steps=0")
