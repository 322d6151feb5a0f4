"""Validation: predict every val image and accumulate the confusion matrix (spec §1.6, 'original' mode)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from semiseg.metrics import confusion_matrix, iou_per_class


@dataclass
class EvalResult:
    miou: float
    iou: list[float]


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device,
             autocast=contextlib.nullcontext, reduce=None) -> EvalResult:
    """Whole-image prediction at native resolution (batch 1), eval mode; the model's mode is restored.

    ``reduce`` sums the confusion matrix over data-parallel processes that each evaluated a shard."""
    was_training = model.training
    model.eval()
    total = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    for batch in loader:
        img = batch["img"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True)
        with autocast():
            pred = model(img).argmax(dim=1)
        total += confusion_matrix(pred, mask, num_classes)
    model.train(was_training)
    if reduce is not None:
        total = reduce(total)
    iou = iou_per_class(total.cpu())
    return EvalResult(float(iou.mean()), [float(v) for v in iou])
