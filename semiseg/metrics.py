"""Confusion-matrix mIoU exactly as docs/methods.md §1.6: ignore 255, absent classes count as IoU 0."""

from __future__ import annotations

import torch

from semiseg.constants import IGNORE


def confusion_matrix(pred: torch.Tensor, gt: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C×C int64 counts (rows = ground truth, columns = prediction) over pixels whose GT is not 255."""
    valid = gt != IGNORE
    index = gt[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """IoU_c = I_c / (U_c + 1e-10) · 100 in float64; a class with zero union gets 0."""
    confusion = confusion.double()
    intersection = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - intersection
    return intersection / (union + 1e-10) * 100


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean over all classes (classes absent from both GT and prediction are not skipped)."""
    return float(iou_per_class(confusion).mean())
