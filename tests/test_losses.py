"""Loss functions against hand-computed values on tiny tensors."""

import math

import pytest
import torch

from semiseg.losses import (ce_loss, fixmatch_total, mask_ratio, mix, ohem_loss, pseudo_labels, unimatch_total,
                            unsup_loss)

LN2 = math.log(2)
LOG1PE2 = math.log(1 + math.e ** 2)  # CE of logits [2, 0] against class 1


def two_pixels():
    logits = torch.tensor([[0.0, 2.0], [0.0, 0.0]]).reshape(1, 2, 1, 2)  # pixel a: [0,0], pixel b: [2,0]
    return logits, torch.tensor([[[0, 1]]])


def test_ce_ignores_255():
    logits, _ = two_pixels()
    assert ce_loss(logits, torch.tensor([[[0, 255]]])).item() == pytest.approx(LN2)
    assert ce_loss(logits, torch.tensor([[[0, 1]]])).item() == pytest.approx((LN2 + LOG1PE2) / 2)


def test_unsup_loss_threshold_and_denominator():
    logits, pseudo = two_pixels()
    conf = torch.tensor([[[0.96, 0.5]]])
    ign = torch.zeros(1, 1, 2, dtype=torch.long)
    # only pixel a passes tau, but the denominator counts every non-padded pixel
    assert unsup_loss(logits, pseudo, conf, ign, 0.95).item() == pytest.approx(LN2 / 2)
    assert unsup_loss(logits, pseudo, conf, ign, 0.0).item() == pytest.approx((LN2 + LOG1PE2) / 2)
    # conf exactly tau passes (>=)
    assert unsup_loss(logits, pseudo, torch.tensor([[[0.95, 0.95]]]), ign, 0.95).item() == pytest.approx(
        (LN2 + LOG1PE2) / 2)
    # a padded pixel leaves numerator and denominator
    ign_b = torch.tensor([[[0, 255]]])
    assert unsup_loss(logits, pseudo, torch.ones(1, 1, 2), ign_b, 0.95).item() == pytest.approx(LN2)


def test_unsup_loss_has_no_gradient_through_targets():
    logits, pseudo = two_pixels()
    logits.requires_grad_(True)
    loss = unsup_loss(logits, pseudo, torch.ones(1, 1, 2), torch.zeros(1, 1, 2, dtype=torch.long), 0.5)
    loss.backward()
    # d/dz of CE at pixel a (uniform softmax, label 0): [p0 - 1, p1] / 2 pixels
    assert logits.grad[0, :, 0, 0].tolist() == pytest.approx([-0.25, 0.25])


def gt_prob_logits(probs):
    p = torch.tensor(probs)
    return torch.stack([p.log(), (1 - p).log()]).reshape(1, 2, 1, len(probs)), torch.zeros(1, 1, len(probs)).long()


def test_ohem_keeps_hard_pixels():
    logits, target = gt_prob_logits([0.9, 0.6, 0.8, 0.3])
    nll = [-math.log(p) for p in (0.9, 0.6, 0.8, 0.3)]
    # min_kept=2: the 2nd smallest prob (0.6) <= 0.7, so threshold 0.7 keeps {0.6, 0.3}
    assert ohem_loss(logits, target, 0.7, 2).item() == pytest.approx((nll[1] + nll[3]) / 2, rel=1e-5)
    # min_kept=3: the 3rd smallest (0.8) > 0.7 becomes the threshold: keeps {0.6, 0.8, 0.3}
    assert ohem_loss(logits, target, 0.7, 3).item() == pytest.approx((nll[1] + nll[2] + nll[3]) / 3, rel=1e-5)
    # fewer valid pixels than min_kept: plain CE over all valid pixels
    assert ohem_loss(logits, target, 0.7, 10).item() == pytest.approx(sum(nll) / 4, rel=1e-5)


def test_ohem_respects_ignore():
    logits, target = gt_prob_logits([0.9, 0.6, 0.8, 0.3])
    target[0, 0, 3] = 255
    # valid probs {0.9, 0.6, 0.8}: the 2nd smallest (0.8) > 0.7 becomes the threshold, keeping {0.6, 0.8}
    assert ohem_loss(logits, target, 0.7, 2).item() == pytest.approx(-(math.log(0.6) + math.log(0.8)) / 2, rel=1e-5)


def test_total_weights():
    one = torch.tensor(1.0)
    assert unimatch_total(one, 2 * one, 4 * one, 8 * one).item() == pytest.approx((1 + 0.5 + 1 + 4) / 2)
    assert fixmatch_total(one, 3 * one).item() == pytest.approx(2.0)


def test_pseudo_labels_and_mask_ratio():
    logits, _ = two_pixels()
    conf, label = pseudo_labels(logits)
    assert label.tolist() == [[[0, 0]]]
    assert conf[0, 0].tolist() == pytest.approx([0.5, math.e ** 2 / (1 + math.e ** 2)])
    assert mask_ratio(conf, torch.tensor([[[0, 0]]]), 0.8).item() == pytest.approx(0.5)
    assert mask_ratio(conf, torch.tensor([[[255, 0]]]), 0.8).item() == pytest.approx(1.0)


def test_mix_composes_labels_and_images():
    box = torch.tensor([[[True, False]]])
    assert mix(box, torch.tensor([[[7, 7]]]), torch.tensor([[[1, 1]]])).tolist() == [[[7, 1]]]
    img_in, img_out = torch.ones(1, 3, 1, 2), torch.zeros(1, 3, 1, 2)
    out = mix(box, img_in, img_out)
    assert out[:, :, 0, 0].eq(1).all() and out[:, :, 0, 1].eq(0).all()
