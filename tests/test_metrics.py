"""mIoU against a float64 reference that follows the official histogram recipe (docs/methods.md §1.6) literally."""

import numpy as np
import pytest
import torch

from semiseg.metrics import confusion_matrix, iou_per_class, mean_iou


def reference_miou(preds, gts, num_classes):
    inter = np.zeros(num_classes, np.float64)
    union = np.zeros(num_classes, np.float64)
    for pred, gt in zip(preds, gts):
        pred = pred.copy()
        pred[gt == 255] = 255
        hist_i = np.histogram(pred[pred == gt], bins=num_classes, range=(0, num_classes - 1))[0]
        hist_p = np.histogram(pred, bins=num_classes, range=(0, num_classes - 1))[0]
        hist_g = np.histogram(gt, bins=num_classes, range=(0, num_classes - 1))[0]
        inter += hist_i
        union += hist_p + hist_g - hist_i
    iou = inter / (union + 1e-10) * 100
    return iou, iou.mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_miou_matches_float64_reference(seed):
    rng = np.random.default_rng(seed)
    C = 7
    preds = [rng.integers(0, C, (13, 17)) for _ in range(5)]
    gts = []
    for p in preds:
        g = np.where(rng.random(p.shape) < 0.6, p, rng.integers(0, C - 1, p.shape))  # class C-1 never in GT
        g[rng.random(p.shape) < 0.1] = 255
        gts.append(g)
    total = sum(confusion_matrix(torch.from_numpy(p), torch.from_numpy(g), C) for p, g in zip(preds, gts))
    ref_iou, ref_miou = reference_miou(preds, gts, C)
    assert iou_per_class(total).numpy() == pytest.approx(ref_iou, abs=1e-9)
    assert mean_iou(total) == pytest.approx(ref_miou, abs=1e-9)


def test_absent_class_counts_as_zero():
    pred = torch.tensor([[0, 0, 1, 1]])
    gt = torch.tensor([[0, 0, 1, 255]])
    iou = iou_per_class(confusion_matrix(pred, gt, 3))
    assert iou.tolist() == pytest.approx([100.0, 100.0, 0.0])  # the pixel under 255 is not counted
    assert mean_iou(confusion_matrix(pred, gt, 3)) == pytest.approx(200 / 3)
