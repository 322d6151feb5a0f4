"""Loss functions of docs/methods.md §1.4 and the CutMix target composition, as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semiseg.constants import IGNORE



def ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over pixels whose target is not 255."""
    return F.cross_entropy(logits, target, ignore_index=IGNORE)


def ohem_loss(logits: torch.Tensor, target: torch.Tensor, thresh: float = 0.7, min_kept: int = 200000) -> torch.Tensor:
    """Probability-based OHEM: CE over valid pixels whose GT-class probability ≤ max(thresh, t_min_kept)."""
    valid = target != IGNORE
    n_valid = int(valid.sum())
    target_ = target.masked_fill(~valid, 0)
    threshold = thresh
    if n_valid >= min_kept and n_valid > 0:
        with torch.no_grad():
            prob = logits.float().softmax(1).gather(1, target_.unsqueeze(1)).squeeze(1)
            kth = prob[valid].sort().values[min(min_kept, n_valid) - 1].item()
        threshold = max(kth, thresh)
        keep = valid & (prob <= threshold)
    else:
        keep = valid
    return F.cross_entropy(logits, target.masked_fill(~keep, IGNORE), ignore_index=IGNORE)


def labeled_loss(logits: torch.Tensor, target: torch.Tensor, criterion: str, ohem_thresh: float,
                 ohem_min_kept: int) -> torch.Tensor:
    if criterion == "ohem":
        return ohem_loss(logits, target, ohem_thresh, ohem_min_kept)
    return ce_loss(logits, target)


def masked_loss(logits: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, ign: torch.Tensor) -> torch.Tensor:
    """Σ CE(logits, target)·keep·[ign ≠ 255] / Σ [ign ≠ 255]  (denominator: all non-padded pixels)."""
    valid = ign != IGNORE
    weight = (keep & valid).to(logits.dtype)
    loss = F.cross_entropy(logits, target, reduction="none") * weight
    return loss.sum() / valid.sum().clamp_min(1).detach()


def unsup_loss(logits: torch.Tensor, pseudo: torch.Tensor, conf: torch.Tensor, ign: torch.Tensor,
               thresh: float) -> torch.Tensor:
    """Σ CE(logits, pseudo)·[conf ≥ τ]·[ign ≠ 255] / Σ [ign ≠ 255]  (denominator: all non-padded pixels)."""
    return masked_loss(logits, pseudo, conf >= thresh, ign)


def pseudo_labels(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence, argmax class) of detached logits."""
    conf, label = logits.detach().softmax(dim=1).max(dim=1)
    return conf, label


def mix(box: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Take ``inside`` where the N×H×W box mask is set, ``outside`` elsewhere (images broadcast over C)."""
    if inside.dim() == box.dim() + 1:
        box = box.unsqueeze(1)
    return torch.where(box, inside, outside)


def flip_mix(box: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Style-B CutMix (V2): inside sample i's box take sample B−1−i of the same batch (the batch reversed)."""
    return mix(box, value.flip(0), value)


def mask_ratio(conf: torch.Tensor, ign: torch.Tensor, thresh: float) -> torch.Tensor:
    """Fraction of non-padded pixels whose confidence passes τ (logged only)."""
    valid = ign != IGNORE
    return ((conf >= thresh) & valid).sum() / valid.sum().clamp_min(1)


def fixmatch_total(loss_x: torch.Tensor, loss_s: torch.Tensor) -> torch.Tensor:
    """FixMatch: (L_x + L_s) / 2."""
    return (loss_x + loss_s) / 2


def unimatch_v2_total(loss_x: torch.Tensor, loss_s1: torch.Tensor, loss_s2: torch.Tensor) -> torch.Tensor:
    """UniMatch V2: (L_x + (L_s1 + L_s2)/2) / 2."""
    return (loss_x + (loss_s1 + loss_s2) / 2) / 2


def ema_ratio(iteration: int, decay: float) -> float:
    """The V2 EMA ratio α = min(1 − 1/(it + 1), decay); ``iteration`` is global and 0-based (α = 0 at it 0)."""
    return min(1 - 1 / (iteration + 1), decay)


def unimatch_total(loss_x: torch.Tensor, loss_s1: torch.Tensor, loss_s2: torch.Tensor,
                   loss_fp: torch.Tensor) -> torch.Tensor:
    """UniMatch V1: (L_x + 0.25·L_s1 + 0.25·L_s2 + 0.5·L_fp) / 2."""
    return (loss_x + 0.25 * loss_s1 + 0.25 * loss_s2 + 0.5 * loss_fp) / 2
