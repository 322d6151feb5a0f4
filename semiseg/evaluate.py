"""Validation: predict every val image and accumulate the confusion matrix (spec §1.6, 'original' mode)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from semiseg.metrics import confusion_matrix, iou_per_class


@dataclass
class EvalResult:
    miou: float
    iou: list[float]


def predict(model: nn.Module, img: torch.Tensor) -> torch.Tensor:
    """Logits at the image size. A model with ``input_multiple`` m > 1 (DPT: 14) sees the image resized
    (bilinear, align_corners) to the nearest multiples of m, ``int(x/m + 0.5)·m``, and its logits are
    resized back (V2 ``multiplier=14``, spec §1.6)."""
    m = getattr(model, "input_multiple", 1)
    if m == 1:
        return model(img)
    h, w = img.shape[-2:]
    size = (max(1, int(h / m + 0.5)) * m, max(1, int(w / m + 0.5)) * m)
    logits = model(F.interpolate(img, size=size, mode="bilinear", align_corners=True))
    return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device,
             autocast=contextlib.nullcontext) -> EvalResult:
    """Whole-image prediction at native resolution (batch 1), eval mode; the model's mode is restored."""
    was_training = model.training
    model.eval()
    total = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    for batch in loader:
        img = batch["img"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True)
        with autocast():
            pred = predict(model, img).argmax(dim=1)
        total += confusion_matrix(pred, mask, num_classes)
    model.train(was_training)
    iou = iou_per_class(total.cpu())
    return EvalResult(float(iou.mean()), [float(v) for v in iou])
