"""PrevMatch / CorrMatch / SemiOVS loss terms and target logic against hand-computed values on tiny tensors."""

import math

import pytest
import torch

from semiseg.losses import masked_loss
from semiseg.losses_ext import (adaptive_thresh, corrmatch_total, kl_loss, pixelavg_loss, prev_lambda,
                                propagate_regions, v1_unsup, weighted_total)

LN2 = math.log(2)


def test_v1_weighting_and_weighted_total():
    one = torch.tensor(1.0)
    assert v1_unsup(one, 2 * one, 4 * one).item() == pytest.approx(0.25 + 0.5 + 2)
    # no extras: UniMatch's (L_x + L_std) / 2
    assert weighted_total(one, 3 * one).item() == pytest.approx(2.0)
    # PrevMatch (λ=0.5): (1 + 3 + 0.5·4) / 2.5; PrevMatch + SemiOVS: (1 + 3 + 0.5·4 + 1·6) / 3.5
    assert weighted_total(one, 3 * one, [(4 * one, 0.5)]).item() == pytest.approx(6 / 2.5)
    assert weighted_total(one, 3 * one, [(4 * one, 0.5), (6 * one, 1.0)]).item() == pytest.approx(12 / 3.5)


@pytest.mark.parametrize("epoch, epochs, expected", [
    (0, 80, 0.0), (20, 80, 0.5), (40, 80, 1.0), (60, 80, 0.5), (79, 80, 0.025),
    (0, 2, 0.0), (1, 2, 1.0), (0, 1, 1.0), (2, 5, 1.0), (4, 5, 1 / 3),
])
def test_prev_lambda_triangle(epoch, epochs, expected):
    assert prev_lambda(epoch, epochs) == pytest.approx(expected)


def test_pixelavg_faithful_and_fixed():
    logits = torch.zeros(2, 2, 1, 2)  # every pixel CE = ln 2
    pseudo = torch.zeros(2, 1, 2, dtype=torch.long)
    conf = torch.tensor([[[0.6, 0.8]], [[0.5, 0.9]]])
    ign = torch.tensor([[[0, 0]], [[0, 255]]])  # image 1's second pixel is padding
    # avg_conf = [0.7, 0.5] over valid pixels; 3 valid pixels
    # faithful: (Σ over all 4 pixels CE) · (0.7 + 0.5) / 3
    assert pixelavg_loss(logits, pseudo, conf, ign).item() == pytest.approx(4 * LN2 * 1.2 / 3)
    # fixed: (0.7 · 2 ln2 + 0.5 · ln2) / 3
    assert pixelavg_loss(logits, pseudo, conf, ign, fixed=True).item() == pytest.approx(1.9 * LN2 / 3)


def probs_logits(rows):
    """Logits (1×C×1×N) whose softmax is the given per-pixel probability rows."""
    p = torch.tensor(rows, dtype=torch.float32)
    return p.clamp_min(1e-30).log().t().reshape(1, p.shape[1], 1, p.shape[0])


def test_adaptive_threshold_mean_of_per_class_max():
    logits = probs_logits([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0], [0.2, 0.8, 0.0], [0.005, 0.99, 0.005]])
    ign = torch.tensor([[[0, 0, 0, 255]]])
    # class 0: max(0.9, 0.7) = 0.9; class 1: 0.8 (0.99 is ignored); class 2 absent → new = 0.85
    assert adaptive_thresh(0.5, logits, ign, 0.9) == pytest.approx(0.9 * 0.5 + 0.1 * 0.85, rel=1e-6)
    assert adaptive_thresh(0.5, logits, ign, 0.999) == pytest.approx(0.999 * 0.5 + 0.001 * 0.85, rel=1e-6)
    # nothing valid: unchanged
    assert adaptive_thresh(0.5, logits, torch.full((1, 1, 4), 255), 0.9) == 0.5


def row(*on, width=8):
    return [i in on for i in range(width)]


def test_region_propagation_is_sequential_and_restricted():
    labels = torch.tensor([[[1, 1, 2, 0, 2, 2, 0, 0]]])
    mask = torch.tensor([[row(0, 1, 2, 4, 6, 7)]])
    box = torch.tensor([[row(7)]])
    ign = torch.zeros(1, 1, 8, dtype=torch.long)
    regions = torch.tensor([[[row(0, 1, 2, 3)], [row(2, 4, 5)], [row(5, 6, 7)]]])  # B=1, R=3, H=1, W=8
    before = (labels.clone(), mask.clone())
    out_labels, out_mask = propagate_regions(regions, box, ign, labels, mask, 0.6)
    # region 0: seg {0,1,2}, 3/4 ≥ 0.6; classes 1,1,2 → 2/3 > 0.6 → pixels 0..3 become 1 and join the mask
    # region 1: seg {2,4}, 2/3 ≥ 0.6; pixel 2 is now 1 (sequential), pixel 4 is 2 → 1/2 ≤ 0.6 → skipped
    #           (on the original labels it would write 2 into {2,4,5})
    # region 2: pixel 7 is in the box → R' = {5,6}, seg {6}, 1/2 < 0.6 → skipped
    #           (unrestricted, seg {6,7} of class 0 would pass and relabel pixel 5)
    assert out_labels.tolist() == [[[1, 1, 1, 1, 2, 2, 0, 0]]]
    assert out_mask.tolist() == [[row(0, 1, 2, 3, 4, 6, 7)]]
    assert torch.equal(labels, before[0]) and torch.equal(mask, before[1])


def test_region_propagation_respects_ignore_and_empty_regions():
    labels = torch.tensor([[[3, 3, 0, 0]]])
    mask = torch.tensor([[row(0, 1, width=4)]])
    ign = torch.tensor([[[0, 0, 255, 0]]])
    regions = torch.tensor([[[row(0, 1, 2, width=4)], [row(width=4)]]])
    out_labels, out_mask = propagate_regions(regions, torch.zeros(1, 1, 4, dtype=torch.bool), ign, labels, mask, 0.9)
    # pixel 2 is ignored, so R' = {0,1}: seg 2/2, class 3 → nothing new to write; the ignored pixel is untouched
    assert out_labels.tolist() == [[[3, 3, 0, 0]]] and out_mask.tolist() == [[row(0, 1, width=4)]]


def test_masked_loss_and_kl_loss():
    logits_s = probs_logits([[0.25, 0.75], [0.25, 0.75], [0.25, 0.75]])
    logits_w = torch.zeros(1, 2, 1, 3)  # p_w = [0.5, 0.5]
    keep = torch.tensor([[[True, False, True]]])
    ign = torch.tensor([[[0, 0, 255]]])
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    # only pixel 0 is kept and valid; 2 valid pixels in the denominator
    assert kl_loss(logits_s, logits_w, keep & (ign != 255), ign).item() == pytest.approx(kl / 2, rel=1e-5)
    target = torch.tensor([[[1, 1, 1]]])
    assert masked_loss(logits_s, target, keep, ign).item() == pytest.approx(-math.log(0.75) / 2, rel=1e-5)


def test_kl_has_no_gradient_into_the_weak_logits():
    logits_w = torch.zeros(1, 2, 1, 1, requires_grad=True)
    logits_s = torch.tensor([[[[1.0]], [[0.0]]]], requires_grad=True)
    kl_loss(logits_s, logits_w, torch.ones(1, 1, 1, dtype=torch.bool), torch.zeros(1, 1, 1)).backward()
    assert logits_w.grad is None and logits_s.grad.abs().sum() > 0


def test_corrmatch_total_weights():
    one = torch.tensor(1.0)
    total = corrmatch_total(one, 2 * one, 4 * one, 8 * one, 16 * one, 32 * one)
    assert total.item() == pytest.approx((0.5 + 1 + 0.25 * (4 + 8 + 16 + 32)) / 2)
