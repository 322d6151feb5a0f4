"""Validation protocols of docs/methods.md §1.6 and the confusion-matrix accumulation over the val set.

The protocols themselves (:class:`EvalProtocol`, which one a run uses when) are in :mod:`semiseg.protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from semiseg.data.device import loader_norm, to_device
from semiseg.metrics import confusion_matrix, iou_per_class
from semiseg.protocol import EvalProtocol

Predict = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalResult:
    miou: float
    iou: list[float]


def model_multiple(model: nn.Module) -> int:
    """The input multiple a model needs (DPT over DINOv2: 14, its ``input_multiple``); 0 = any size."""
    m = getattr(model, "input_multiple", 1)
    return m if m > 1 else 0


def forward_at_multiple(model: Predict, img: torch.Tensor, multiple: int) -> torch.Tensor:
    """Logits at the input size; with ``multiple`` > 0 the input is resized (bilinear, align_corners=True) to
    ``int(h/m + 0.5)·m`` × ``int(w/m + 0.5)·m`` and the logits resized back (UniMatch V2)."""
    if not multiple:
        return model(img)
    h, w = img.shape[-2:]
    size = (max(int(h / multiple + 0.5), 1) * multiple, max(int(w / multiple + 0.5), 1) * multiple)
    logits = model(F.interpolate(img, size=size, mode="bilinear", align_corners=True))
    return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True)


def window_starts(dim: int, crop: int, stride: int, rule: str) -> list[int]:
    """Window start offsets along one axis.

    ``truncate``: 0, stride, 2·stride, … while < dim (border windows are cut short).
    ``shift``: next = min(prev + stride, dim − crop), stopping after the window that reaches the border.
    """
    if rule == "truncate":
        return list(range(0, dim, stride))
    if rule != "shift":
        raise ValueError(f"unknown window rule {rule!r}")
    starts = [0]
    while starts[-1] + crop < dim:
        starts.append(min(starts[-1] + stride, dim - crop))
    return starts


def sliding_window(predict: Predict, img: torch.Tensor, num_classes: int, crop: int, stride: int, rule: str,
                   window_batch: int = 1) -> torch.Tensor:
    """Sum of the windows' softmax probabilities (N×C×H×W, float32); windows of equal size go in batches."""
    n, _, h, w = img.shape
    total = torch.zeros(n, num_classes, h, w, device=img.device)
    boxes = [(y, x, min(y + crop, h), min(x + crop, w))
             for y in window_starts(h, crop, stride, rule) for x in window_starts(w, crop, stride, rule)]
    by_size: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    for box in boxes:
        by_size.setdefault((box[2] - box[0], box[3] - box[1]), []).append(box)
    for group in by_size.values():
        for i in range(0, len(group), window_batch):
            chunk = group[i:i + window_batch]
            probs = predict(torch.cat([img[:, :, y0:y1, x0:x1] for y0, x0, y1, x1 in chunk])).float().softmax(1)
            for k, (y0, x0, y1, x1) in enumerate(chunk):
                total[:, :, y0:y1, x0:x1] += probs[k * n:(k + 1) * n]
    return total


def center_crop(img: torch.Tensor, mask: torch.Tensor, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The central crop×crop region ((h−crop)//2, (w−crop)//2) of image and mask (whole axis if shorter)."""
    h, w = mask.shape[-2:]
    y, x = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
    return img[..., y:y + crop, x:x + crop], mask[..., y:y + crop, x:x + crop]


def predict(model: Predict, img: torch.Tensor, num_classes: int, protocol: EvalProtocol) -> torch.Tensor:
    """Class scores (N×C×H×W) of one batch under ``protocol`` (center cropping is done by the caller)."""
    multiple = protocol.multiple or model_multiple(model)

    def net(x: torch.Tensor) -> torch.Tensor:
        return forward_at_multiple(model, x, multiple)

    if protocol.mode == "sliding_window":
        return sliding_window(net, img, num_classes, protocol.crop, protocol.stride, protocol.rule,
                              protocol.window_batch)
    return net(img)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, num_classes: int, device: torch.device,
             protocol: EvalProtocol = EvalProtocol(), reduce=None, channels_last: bool = False) -> EvalResult:
    """Predict every val image (batch 1, eval mode) under ``protocol``; the model's mode is restored.

    Always in fp32, with autocast switched off even when called inside an autocast region (training
    under ``train.amp``), as the official PrevMatch/SemiOVS code evaluates outside autocast.
    ``reduce`` sums the confusion matrix over data-parallel processes that each evaluated a shard;
    ``channels_last`` (``speed.channels_last``) gives the model its images in NHWC memory format."""
    was_training = model.training
    model.eval()
    total = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    norm = loader_norm(loader)
    with torch.autocast(device.type, enabled=False):
        for batch in loader:
            batch = to_device(batch, device, norm, channels_last)
            img, mask = batch["img"], batch["mask"]
            if protocol.mode == "center_crop":
                img, mask = center_crop(img, mask, protocol.crop)
            pred = predict(model, img, num_classes, protocol).argmax(dim=1)
            total += confusion_matrix(pred, mask, num_classes)
    model.train(was_training)
    if reduce is not None:
        total = reduce(total)
    iou = iou_per_class(total.cpu())
    return EvalResult(float(iou.mean()), [float(v) for v in iou])
