"""Optimizer factory (two LR groups, docs/methods.md §1.5) and the poly schedule."""

from __future__ import annotations

import torch
from torch import nn

from semiseg.config import OptimConfig


#: ``speed.optimizer_impl`` → the optimizer's keyword ("default": torch picks, foreach on CUDA, a loop on CPU)
IMPLS: dict[str, dict[str, bool]] = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float | None = None,
                    impl: str = "default") -> torch.optim.Optimizer:
    """Group 0 = ``model.backbone`` at lr, group 1 = everything else at lr·lr_multi; decay on every parameter.

    ``lr`` (default ``cfg.lr``) is the backbone LR to use, e.g. :func:`effective_lr` of the run config.
    ``impl`` is ``speed.optimizer_impl`` (checked by the config schema): the same update with torch's
    multi-tensor (foreach) or fused kernels (fused SGD and AdamW run on CUDA and, since torch 2.4, on CPU).
    """
    lr = cfg.lr if lr is None else lr
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    groups = [{"params": backbone, "lr": lr, "base_lr": lr},
              {"params": rest, "lr": lr * cfg.lr_multi, "base_lr": lr * cfg.lr_multi}]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               **IMPLS[impl])
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay, **IMPLS[impl])


def poly_lr(base_lr: float, iteration: int, total_iters: int, power: float) -> float:
    """lr·(1 − it/total)^power, set after the optimizer step of iteration ``it`` (0-based)."""
    return base_lr * (1 - iteration / total_iters) ** power
