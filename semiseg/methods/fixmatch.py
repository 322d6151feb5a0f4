"""FixMatch, V1 style (docs/methods.md §2.2): online train-mode teacher, one strong view, Style-A CutMix."""

from __future__ import annotations

import torch

from semiseg.losses import fixmatch_total, mask_ratio, mix, pseudo_labels, unsup_loss
from semiseg.methods.base import METHODS, Method, StepOutput


@METHODS.register("fixmatch")
class FixMatch(Method):
    streams = ("labeled", "unlabeled", "mix")

    def step(self, batch):
        x, y = batch["labeled"]["img"], batch["labeled"]["mask"]
        u, m = batch["unlabeled"], batch["mix"]
        conf_mix, label_mix = pseudo_labels(self.eval_forward(m["w"]))
        s1 = mix(u["box1"], m["s1"], u["s1"])

        logits_x, logits_w = self.model(torch.cat([x, u["w"]])).split([x.shape[0], u["w"].shape[0]])
        logits_s = self.model(s1)
        conf_w, label_w = pseudo_labels(logits_w)

        box = u["box1"]
        loss_x = self.labeled_loss(logits_x, y)
        loss_s = unsup_loss(logits_s, mix(box, label_mix, label_w), mix(box, conf_mix, conf_w),
                            mix(box, m["ign"], u["ign"]), self.thresh)
        loss = fixmatch_total(loss_x, loss_s)
        return StepOutput(loss, {"loss_x": loss_x.detach(), "loss_s": loss_s.detach(),
                                 "mask_ratio": mask_ratio(conf_w, u["ign"], self.thresh)})
