"""SemiOVS (docs/methods.md §2.7): an OOD stream with precomputed open-vocabulary pseudo-labels, on UniMatch and
PrevMatch."""

from __future__ import annotations

import torch

from semiseg.losses import mix, unsup_loss
from semiseg.losses_ext import v1_unsup
from semiseg.methods.base import METHODS
from semiseg.methods.prevmatch import PrevMatch
from semiseg.methods.unimatch import UniMatch, V1Pass


def ood_loss(p: V1Pass, u: dict, ood: dict, thresh: float) -> torch.Tensor:
    """0.25·L_u(s1_ood) + 0.25·L_u(s2_ood) + 0.5·L_u(fp_ood), before the λ weight.

    Inside the ID box (where ID content was pasted) the targets are the ID weak prediction, its
    confidence and the ID ignore map; outside, the OOD pseudo-label with confidence 1 and ``ign_ood``.
    """
    ones = torch.ones_like(p.conf_w)
    strong = [unsup_loss(logits, mix(box, p.label_w, ood["mask"]), mix(box, p.conf_w, ones),
                         mix(box, u["ign"], ood["ign"]), thresh)
              for logits, box in zip(p.logits_s_ood, (u["box1"], u["box2"]))]
    return v1_unsup(strong[0], strong[1], unsup_loss(p.logits_w_fp_ood, ood["mask"], ones, ood["ign"], thresh))


@METHODS.register("semiovs_unimatch")
class SemiOVSUniMatch(UniMatch):
    """(L_x + L_std + λ·L_ood) / (2 + λ)."""

    streams = ("labeled", "unlabeled", "mix", "ood")

    def guidance(self, p, batch):
        extras, terms = super().guidance(p, batch)
        loss_ood = ood_loss(p, batch["unlabeled"], batch["ood"], self.thresh)
        return [(loss_ood, self.cfg.semiovs.ood_lambda)] + extras, {**terms, "loss_ood": loss_ood.detach()}


@METHODS.register("semiovs_prevmatch")
class SemiOVSPrevMatch(SemiOVSUniMatch, PrevMatch):
    """(L_x + L_std + λ_prev·L_prev + λ·L_ood) / (2 + λ_prev + λ); before the first snapshot the UniMatch
    version (L_x + L_std + λ·L_ood) / (2 + λ)."""
