"""UniMatch V1 (spec §2.3): two strong views with Style-A CutMix plus a feature-perturbation stream."""

from __future__ import annotations

import torch

from semiseg.losses import mask_ratio, mix, pseudo_labels, unimatch_total, unsup_loss
from semiseg.methods.base import METHODS, Method, StepOutput


@METHODS.register("unimatch")
class UniMatch(Method):
    streams = ("labeled", "unlabeled", "mix")

    def step(self, batch):
        x, y = batch["labeled"]["img"], batch["labeled"]["mask"]
        u, m = batch["unlabeled"], batch["mix"]
        n_x, n_u = x.shape[0], u["w"].shape[0]

        conf_mix, label_mix = pseudo_labels(self.eval_forward(m["w"]))
        s1 = mix(u["box1"], m["s1"], u["s1"])
        s2 = mix(u["box2"], m["s2"], u["s2"])

        logits, logits_fp = self.model(torch.cat([x, u["w"]]), need_fp=True)
        logits_x, logits_w = logits.split([n_x, n_u])
        logits_w_fp = logits_fp[n_x:]
        logits_s1, logits_s2 = self.model(torch.cat([s1, s2])).chunk(2)
        conf_w, label_w = pseudo_labels(logits_w)

        loss_x = self.labeled_loss(logits_x, y)
        strong = []
        for logits_s, box in ((logits_s1, u["box1"]), (logits_s2, u["box2"])):
            strong.append(unsup_loss(logits_s, mix(box, label_mix, label_w), mix(box, conf_mix, conf_w),
                                     mix(box, m["ign"], u["ign"]), self.thresh))
        loss_fp = unsup_loss(logits_w_fp, label_w, conf_w, u["ign"], self.thresh)
        loss = unimatch_total(loss_x, strong[0], strong[1], loss_fp)
        return StepOutput(loss, {"loss_x": loss_x.detach(), "loss_s1": strong[0].detach(),
                                 "loss_s2": strong[1].detach(), "loss_fp": loss_fp.detach(),
                                 "mask_ratio": mask_ratio(conf_w, u["ign"], self.thresh)})
