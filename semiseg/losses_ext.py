"""Loss terms and target logic of PrevMatch, CorrMatch and SemiOVS (docs/methods.md §1.4, §2.5–2.7), as pure functions.

The shared pieces (``masked_loss``, ``unsup_loss``, ``mix``) live in :mod:`semiseg.losses`.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from semiseg.losses import IGNORE


# --------------------------------------------------------------------------- weighting shared by the V1 family


def v1_unsup(loss_s1: torch.Tensor, loss_s2: torch.Tensor, loss_fp: torch.Tensor) -> torch.Tensor:
    """The UniMatch V1 unlabeled bracket 0.25·L_s1 + 0.25·L_s2 + 0.5·L_fp (also used for L_prev and L_ood)."""
    return 0.25 * loss_s1 + 0.25 * loss_s2 + 0.5 * loss_fp


def weighted_total(loss_x: torch.Tensor, loss_std: torch.Tensor,
                   extras: Sequence[tuple[torch.Tensor, float]] = ()) -> torch.Tensor:
    """(L_x + L_std + Σ λ_i·L_i) / (2 + Σ λ_i): PrevMatch (λ_prev), SemiOVS (λ_ood) and both together.

    With no extras this is UniMatch V1's (L_x + L_std) / 2.
    """
    num = loss_x + loss_std
    den = 2.0
    for term, weight in extras:
        num = num + weight * term
        den += weight
    return num / den


# --------------------------------------------------------------------------- PrevMatch


def prev_lambda(epoch: int, epochs: int) -> float:
    """The triangle schedule λ(e): e/E_w rising over the first half (E_w = E // 2), then 1 − (e − E_w)/(E − E_w)."""
    half = epochs // 2
    if epoch < half:
        return epoch / half
    return 1.0 - (epoch - half) / (epochs - half)


def pixelavg_loss(logits: torch.Tensor, pseudo: torch.Tensor, conf: torch.Tensor, ign: torch.Tensor,
                  fixed: bool = False) -> torch.Tensor:
    """PrevMatch's ``pixelavg`` previous-guidance loss (Cityscapes), docs/methods.md §1.4.

    ``avg_conf_b`` is the mean confidence over the non-padded pixels of image b. As implemented
    (``fixed=False``, bug included): (Σ_all pixels CE) · (Σ_b avg_conf_b) / Σ[ign ≠ 255], with no
    threshold and no ignore masking in the numerator. ``fixed=True``: Σ_b avg_conf_b · Σ_{x valid} CE_b
    / Σ[ign ≠ 255] (each image's loss weighted by its own mean confidence; padded pixels excluded).
    """
    valid = ign != IGNORE
    v = valid.to(conf.dtype)
    avg_conf = ((conf * v).flatten(1).sum(1) / v.flatten(1).sum(1).clamp_min(1)).detach()
    ce = F.cross_entropy(logits, pseudo, reduction="none")
    denom = valid.sum().clamp_min(1).detach()
    if fixed:
        return (avg_conf * (ce * valid.to(ce.dtype)).flatten(1).sum(1)).sum() / denom
    return ce.sum() * avg_conf.sum() / denom


# --------------------------------------------------------------------------- CorrMatch


def adaptive_thresh(tau: float, logits: torch.Tensor, ign: torch.Tensor, momentum: float) -> float:
    """One ThreshController update: τ ← m·τ + (1 − m)·mean_c max{conf(x) : yhat(x) = c, ign(x) ≠ 255}.

    The mean runs over the classes predicted on at least one non-ignored pixel; with none, τ is unchanged.
    """
    conf, pred = logits.detach().float().softmax(1).max(1)
    valid = ign != IGNORE
    conf, pred = conf[valid], pred[valid]
    if pred.numel() == 0:
        return tau
    num_classes = logits.shape[1]
    best = torch.full((num_classes,), -1.0, device=conf.device).scatter_reduce(0, pred, conf, "amax")
    new = best[best >= 0].mean().item()
    return momentum * tau + (1 - momentum) * new


def propagate_regions(regions: torch.Tensor, box: torch.Tensor, ign: torch.Tensor, labels: torch.Tensor,
                      mask: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """CorrMatch region propagation (docs/methods.md §2.6 step 7), sequential semantics kept.

    ``regions`` (B×R×H×W bool) are restricted to pixels outside ``box`` that are not ignored (R').
    For each image and region in index order: ``seg = R' ∧ mask``; skip if |seg| = 0 or |seg|/|R'| < τ;
    if the most frequent class of the current labels over ``seg`` covers more than τ of it, write it into
    the whole region and add the region to the extended mask. Returns (labels, mask_ext); inputs are
    not modified. Region sizes are computed in one vectorised pass; only eligible regions are looped over.
    """
    regions = regions & ~box.bool().unsqueeze(1) & (ign != IGNORE).unsqueeze(1)
    labels, mask_ext = labels.clone(), mask.clone()
    seg = regions & mask.unsqueeze(1)
    n_seg = seg.flatten(2).sum(2)
    n_reg = regions.flatten(2).sum(2)
    eligible = (n_seg > 0) & (n_seg / n_reg.clamp_min(1) >= tau)
    num_classes = int(labels.max()) + 1 if labels.numel() else 1
    for b, r in eligible.nonzero().tolist():
        counts = torch.bincount(labels[b][seg[b, r]], minlength=num_classes)
        top = int(counts.argmax())
        if counts[top].item() / n_seg[b, r].item() > tau:
            labels[b][regions[b, r]] = top
            mask_ext[b] |= regions[b, r]
    return labels, mask_ext | mask


def kl_loss(logits_s: torch.Tensor, logits_w: torch.Tensor, keep: torch.Tensor, ign: torch.Tensor) -> torch.Tensor:
    """Σ_x (Σ_c KL(softmax(z_w) ‖ softmax(z_s)))·keep / Σ[ign ≠ 255]; the weak target is detached."""
    target = logits_w.detach().softmax(1)
    kl = F.kl_div(logits_s.log_softmax(1), target, reduction="none").sum(1)
    return (kl * keep.to(kl.dtype)).sum() / (ign != IGNORE).sum().clamp_min(1).detach()


def corrmatch_total(loss_x: torch.Tensor, loss_x_corr: torch.Tensor, loss_s: torch.Tensor, loss_kl: torch.Tensor,
                    loss_fp: torch.Tensor, loss_corr: torch.Tensor) -> torch.Tensor:
    """(0.5·L_x + 0.5·L_x_corr + 0.25·L_s + 0.25·L_kl + 0.25·L_fp + 0.25·L_corr) / 2."""
    return (0.5 * loss_x + 0.5 * loss_x_corr + 0.25 * (loss_s + loss_kl + loss_fp + loss_corr)) / 2
