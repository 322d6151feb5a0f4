"""CorrMatch (docs/methods.md §2.6): one strong view, correlation-based label propagation and an adaptive threshold."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from semiseg.config import RunConfig
from semiseg.distributed import all_gather_cat
from semiseg.losses import IGNORE, mask_ratio, masked_loss, mix, pseudo_labels
from semiseg.losses_ext import adaptive_thresh, corrmatch_total, kl_loss, propagate_regions
from semiseg.methods.base import METHODS, Method, StepOutput


@METHODS.register("corrmatch")
class CorrMatch(Method):
    """UniMatch-style step with the correlation branch; the global threshold τ_g is saved in checkpoints.

    As the official code, τ_g is updated from the weak logits and ignore maps of all data-parallel ranks
    (all-gathered), so every rank holds the same τ_g. Under gradient accumulation it is updated once per
    micro-batch (from the micro-batches of all ranks), not once per optimizer step.
    """

    streams = ("labeled", "unlabeled", "mix")
    model_kwargs = {"corr": True}
    needs_head = "deeplabv3plus"  # the correlation branch sits beside the DeepLabV3+ decoder

    def __init__(self, cfg: RunConfig, model: nn.Module) -> None:
        super().__init__(cfg, model)
        self.tau = cfg.corrmatch.thresh_init

    def step(self, batch):
        opts = self.cfg.corrmatch
        x, y = batch["labeled"]["img"], batch["labeled"]["mask"]
        u, m = batch["unlabeled"], batch["mix"]
        n_x, n_u = x.shape[0], u["w"].shape[0]
        box, ign = u["box1"], u["ign"]

        conf_mix, label_mix = pseudo_labels(self.eval_forward(m["w"]))
        s1 = mix(box, m["s1"], u["s1"])
        out = self.model(torch.cat([x, u["w"]]), need_fp=True, corr=True, num_regions=opts.num_regions)
        logits_x, logits_w = out["out"].split([n_x, n_u])
        corr_x, corr_w = out["corr_out"].split([n_x, n_u])
        logits_w_fp, regions_w = out["out_fp"][n_x:], out["corr_map"][n_x:]
        out_s = self.model(s1, corr=True, num_regions=opts.num_regions)
        logits_s, corr_s = out_s["out"], out_s["corr_out"]

        conf_w, label_w = pseudo_labels(logits_w)
        label1, conf1, ign1 = mix(box, label_mix, label_w), mix(box, conf_mix, conf_w), mix(box, m["ign"], ign)
        # [QUIRK] the τ_g update pairs the un-mixed weak logits with the cut-mixed ignore map
        self.tau = adaptive_thresh(self.tau, all_gather_cat(logits_w), all_gather_cat(ign1), opts.thresh_momentum)
        keep = (conf1 >= self.tau) & (ign1 != IGNORE)
        label_ext, keep_ext = propagate_regions(regions_w, box, ign1, label1, keep, self.tau)
        keep_w = conf_w >= self.tau

        loss_x = self.labeled_loss(logits_x, y)
        loss_x_corr = self.labeled_loss(corr_x, y)
        loss_s = masked_loss(logits_s, label_ext, keep_ext, ign1)
        loss_corr = 0.5 * (masked_loss(corr_s, label_ext, keep_ext, ign1) + masked_loss(corr_w, label_w, keep_w, ign))
        loss_kl = kl_loss(logits_s, logits_w, keep, ign1)  # [QUIRK] un-mixed weak target, non-extended mask
        loss_fp = masked_loss(logits_w_fp, label_w, keep_w, ign)
        loss = corrmatch_total(loss_x, loss_x_corr, loss_s, loss_kl, loss_fp, loss_corr)
        terms = {"loss_x": loss_x, "loss_x_corr": loss_x_corr, "loss_s": loss_s, "loss_kl": loss_kl,
                 "loss_fp": loss_fp, "loss_corr": loss_corr}
        return StepOutput(loss, {**{k: v.detach() for k, v in terms.items()}, "thresh": torch.tensor(self.tau),
                                 "mask_ratio": mask_ratio(conf_w, ign, self.tau),
                                 "mask_ratio_ext": keep_ext.sum() / (ign1 != IGNORE).sum().clamp_min(1)})

    def state_dict(self) -> dict[str, Any]:
        return {"thresh": self.tau}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tau = float(state["thresh"])
