"""UniMatch V1 (docs/methods.md §2.3): two strong views with Style-A CutMix plus a feature-perturbation stream.

:meth:`UniMatch.forward_v1` is the shared step of the V1 family: PrevMatch and SemiOVS add their
terms to its :class:`V1Pass` (SemiOVS also hands it the OOD batch, which changes the batching).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semiseg.losses import mask_ratio, mix, pseudo_labels, unimatch_total, unsup_loss
from semiseg.losses_ext import v1_unsup, weighted_total
from semiseg.methods.base import METHODS, Method, StepOutput


@dataclass
class V1Pass:
    """The tensors of one UniMatch V1 step that the extensions reuse (targets are detached)."""

    loss_x: torch.Tensor
    loss_s: tuple[torch.Tensor, torch.Tensor]
    loss_fp: torch.Tensor
    conf_w: torch.Tensor
    label_w: torch.Tensor
    logits_s: tuple[torch.Tensor, torch.Tensor]
    logits_w_fp: torch.Tensor
    # OOD stream (SemiOVS only): strong-view logits of the OOD images mixed with ID content, FP logits
    logits_s_ood: tuple[torch.Tensor, torch.Tensor] | None = None
    logits_w_fp_ood: torch.Tensor | None = None

    @property
    def loss_std(self) -> torch.Tensor:
        return v1_unsup(self.loss_s[0], self.loss_s[1], self.loss_fp)

    def terms(self, ign: torch.Tensor, thresh: float) -> dict[str, torch.Tensor]:
        return {"loss_x": self.loss_x.detach(), "loss_s1": self.loss_s[0].detach(),
                "loss_s2": self.loss_s[1].detach(), "loss_fp": self.loss_fp.detach(),
                "mask_ratio": mask_ratio(self.conf_w, ign, thresh)}


@METHODS.register("unimatch")
class UniMatch(Method):
    streams = ("labeled", "unlabeled", "mix")

    def forward_v1(self, batch: dict, ood: dict | None = None) -> V1Pass:
        """Mix teacher, CutMix, the [x, w(, w_ood)] FP forward, the [s1, s2] forward and the UniMatch losses.

        With ``ood`` (SemiOVS), the OOD strong views first receive the ID strong views inside the ID
        boxes (before those are mixed themselves), the OOD weak images join forward 1, and the OOD strong
        views get a third forward of their own.
        """
        x, y = batch["labeled"]["img"], batch["labeled"]["mask"]
        u, m = batch["unlabeled"], batch["mix"]
        n_x, n_u = x.shape[0], u["w"].shape[0]

        conf_mix, label_mix = pseudo_labels(self.eval_forward(m["w"]))
        if ood is not None:
            s_ood = (mix(u["box1"], u["s1"], ood["s1"]), mix(u["box2"], u["s2"], ood["s2"]))
        s1 = mix(u["box1"], m["s1"], u["s1"])
        s2 = mix(u["box2"], m["s2"], u["s2"])

        weak = [x, u["w"]] + ([ood["w"]] if ood is not None else [])
        logits, logits_fp = self.model(torch.cat(weak), need_fp=True)
        logits_x, logits_w = logits[:n_x], logits[n_x:n_x + n_u]
        logits_w_fp = logits_fp[n_x:n_x + n_u]
        logits_s1, logits_s2 = self.model(torch.cat([s1, s2])).chunk(2)
        conf_w, label_w = pseudo_labels(logits_w)

        loss_x = self.labeled_loss(logits_x, y)
        strong = []
        for logits_s, box in ((logits_s1, u["box1"]), (logits_s2, u["box2"])):
            strong.append(unsup_loss(logits_s, mix(box, label_mix, label_w), mix(box, conf_mix, conf_w),
                                     mix(box, m["ign"], u["ign"]), self.thresh))
        loss_fp = unsup_loss(logits_w_fp, label_w, conf_w, u["ign"], self.thresh)
        out = V1Pass(loss_x, (strong[0], strong[1]), loss_fp, conf_w, label_w, (logits_s1, logits_s2), logits_w_fp)
        if ood is not None:
            out.logits_s_ood = tuple(self.model(torch.cat(s_ood)).chunk(2))
            out.logits_w_fp_ood = logits_fp[n_x + n_u:]
        return out

    def guidance(self, p: V1Pass, batch: dict) -> tuple[list[tuple[torch.Tensor, float]], dict[str, torch.Tensor]]:
        """The extensions' extra (loss, λ) pairs and logged terms; UniMatch itself has none."""
        return [], {}

    def step(self, batch):
        p = self.forward_v1(batch, batch.get("ood"))
        extras, terms = self.guidance(p, batch)
        if extras:
            loss = weighted_total(p.loss_x, p.loss_std, extras)
        else:
            loss = unimatch_total(p.loss_x, p.loss_s[0], p.loss_s[1], p.loss_fp)
        return StepOutput(loss, {**p.terms(batch["unlabeled"]["ign"], self.thresh), **terms})
