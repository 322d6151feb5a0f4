"""The V2 methods (docs/methods.md §2.2 V2 style, §2.4): EMA teacher on the weak view, Style-B CutMix (reversed
batch)."""

from __future__ import annotations

import torch

from semiseg.losses import fixmatch_total, flip_mix, mask_ratio, unimatch_v2_total, unsup_loss
from semiseg.methods.base import METHODS, StepOutput
from semiseg.methods.ema import EMATeacherMethod


class _V2Method(EMATeacherMethod):
    def strong_loss(self, logits: torch.Tensor, box: torch.Tensor, label_w: torch.Tensor, conf_w: torch.Tensor,
                    ign: torch.Tensor) -> torch.Tensor:
        """L_u of a strong view cut-mixed with ``box``: targets inside the box come from the reversed batch."""
        return unsup_loss(logits, flip_mix(box, label_w), flip_mix(box, conf_w), flip_mix(box, ign), self.thresh)


@METHODS.register("fixmatch_v2")
class FixMatchV2(_V2Method):
    """FixMatch, V2 style: one strong view; ``f(cat(x, s1))`` in one student forward."""

    def step(self, batch):
        x, y, u = batch["labeled"]["img"], batch["labeled"]["mask"], batch["unlabeled"]
        conf_w, label_w = self.teacher(u["w"])
        s1 = flip_mix(u["box1"], u["s1"])
        logits_x, logits_s = self.model(torch.cat([x, s1])).split([x.shape[0], s1.shape[0]])
        loss_x = self.labeled_loss(logits_x, y)
        loss_s = self.strong_loss(logits_s, u["box1"], label_w, conf_w, u["ign"])
        return StepOutput(fixmatch_total(loss_x, loss_s),
                          {"loss_x": loss_x.detach(), "loss_s": loss_s.detach(),
                           "mask_ratio": mask_ratio(conf_w, u["ign"], self.thresh)})


@METHODS.register("unimatch_v2")
class UniMatchV2(_V2Method):
    """UniMatch V2: ``f(x)``, then ``f(cat(s1, s2), comp_drop=True)``; no weak-view student forward."""

    needs_head = "dpt"  # Complementary Dropout masks the DPT head's inputs
    needs_head_when = "unimatch_v2.comp_drop"

    def __init__(self, cfg, model) -> None:
        super().__init__(cfg, model)
        self.comp_drop = cfg.unimatch_v2.comp_drop

    def step(self, batch):
        x, y, u = batch["labeled"]["img"], batch["labeled"]["mask"], batch["unlabeled"]
        conf_w, label_w = self.teacher(u["w"])
        s1, s2 = flip_mix(u["box1"], u["s1"]), flip_mix(u["box2"], u["s2"])
        logits_x = self.model(x)
        strong = torch.cat([s1, s2])
        logits = self.model(strong, comp_drop=True) if self.comp_drop else self.model(strong)
        logits_s1, logits_s2 = logits.chunk(2)
        loss_x = self.labeled_loss(logits_x, y)
        loss_s1 = self.strong_loss(logits_s1, u["box1"], label_w, conf_w, u["ign"])
        loss_s2 = self.strong_loss(logits_s2, u["box2"], label_w, conf_w, u["ign"])
        return StepOutput(unimatch_v2_total(loss_x, loss_s1, loss_s2),
                          {"loss_x": loss_x.detach(), "loss_s": ((loss_s1 + loss_s2) / 2).detach(),
                           "mask_ratio": mask_ratio(conf_w, u["ign"], self.thresh)})
