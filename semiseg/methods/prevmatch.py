"""PrevMatch (docs/methods.md §2.5): UniMatch V1 plus guidance from a random ensemble of earlier student snapshots."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from semiseg.config import RunConfig
from semiseg.distributed import unwrap
from semiseg.losses import mix, pseudo_labels, unsup_loss
from semiseg.losses_ext import pixelavg_loss, prev_lambda, v1_unsup
from semiseg.methods.base import METHODS
from semiseg.methods.unimatch import UniMatch, V1Pass

#: datasets whose reference configs use the short snapshot list and a 5-epoch base-only phase
_SHORT_LIST_DATASETS = ("ade20k", "coco")


def snapshot_capacity(max_len: int, dataset: str) -> int:
    """``prevmatch.max_len``, where 0 means the dataset's reference value (ade20k/coco 5, otherwise 8)."""
    return max_len or (5 if dataset in _SHORT_LIST_DATASETS else 8)


def base_only_epochs(base_only_epoch: int, dataset: str) -> int:
    """``prevmatch.base_only_epoch``, where -1 means the dataset's reference value (ade20k/coco 5, otherwise 0)."""
    return base_only_epoch if base_only_epoch >= 0 else (5 if dataset in _SHORT_LIST_DATASETS else 0)


class SnapshotStore:
    """A FIFO list of frozen, eval-mode copies of ``model`` (at most ``capacity``)."""

    def __init__(self, model: nn.Module, capacity: int) -> None:
        self.model, self.capacity = model, capacity
        self.snapshots: list[nn.Module] = []

    def __len__(self) -> int:
        return len(self.snapshots)

    def _frozen_copy(self) -> nn.Module:
        snap = copy.deepcopy(unwrap(self.model)).eval()
        for p in snap.parameters():
            p.grad = None
            p.requires_grad_(False)
        return snap

    def add(self) -> None:
        """Store a copy of the model's current weights; the oldest snapshot goes when the list is full."""
        self.snapshots.append(self._frozen_copy())
        del self.snapshots[:-self.capacity]

    @torch.no_grad()
    def ensemble(self, images: torch.Tensor, k_max: int, random_select: bool) -> torch.Tensor:
        """Σ_j ω_j·f_j(images) over min(k, len) distinct random snapshots, k ~ U{1..K}, ω ~ Dirichlet(1, …, 1).

        Draws come from the global torch RNG (saved in checkpoints), so a resumed run draws the same.
        """
        k = int(torch.randint(1, k_max + 1, ())) if random_select else k_max
        chosen = torch.randperm(len(self.snapshots))[:min(k, len(self.snapshots))].tolist()
        weights = torch.distributions.Dirichlet(torch.ones(len(chosen))).sample().tolist()
        out = None
        for w, j in zip(weights, chosen):
            logits = w * self.snapshots[j](images)
            out = logits if out is None else out + logits
        return out

    def state_dict(self) -> list[dict[str, torch.Tensor]]:
        return [snap.state_dict() for snap in self.snapshots]

    def load_state_dict(self, states: list[dict[str, torch.Tensor]]) -> None:
        self.snapshots = []
        for state in states:
            snap = self._frozen_copy()
            snap.load_state_dict(state)
            self.snapshots.append(snap)


class PrevGuidance:
    """The snapshot store, when snapshots are taken, and the previous-guidance loss L_prev with its λ."""

    def __init__(self, cfg: RunConfig, model: nn.Module) -> None:
        self.cfg, self.p = cfg, cfg.prevmatch
        self.store = SnapshotStore(model, snapshot_capacity(self.p.max_len, cfg.data.dataset))
        self.base_only = base_only_epochs(self.p.base_only_epoch, cfg.data.dataset)

    def end_epoch(self, trainer, result) -> None:
        """Snapshot for the next epoch e (= completed epochs): on a new best val mIoU, or every N epochs.

        A best of 0.0 is no improvement (the official best starts at 0), so an untrained model is not stored.
        """
        e = trainer.state.epoch
        if e >= self.cfg.train.epochs or e < self.base_only:
            return
        if self.p.snapshot_on == "best_val":
            take = result.is_best and trainer.state.last_miou > 0
        else:
            take = e % self.p.snapshot_interval == 0
        if take:
            self.store.add()

    def term(self, logits: torch.Tensor, label: torch.Tensor, conf: torch.Tensor, ign: torch.Tensor) -> torch.Tensor:
        if self.p.conf_mode == "pixelwise":
            return unsup_loss(logits, label, conf, ign, self.p.conf_thresh)
        return pixelavg_loss(logits, label, conf, ign, fixed=self.p.conf_mode == "pixelavg_fixed")

    def loss(self, p: V1Pass, batch: dict) -> torch.Tensor | None:
        """L_prev on the student's strong and FP predictions, or None while the store is empty."""
        if not len(self.store):
            return None
        u, m = batch["unlabeled"], batch["mix"]
        logits = self.store.ensemble(torch.cat([u["w"], m["w"]]), self.p.num_models, self.p.random_select)
        conf_w, label_w = pseudo_labels(logits[:u["w"].shape[0]])
        conf_mix, label_mix = pseudo_labels(logits[u["w"].shape[0]:])
        strong = [self.term(logits_s, mix(box, label_mix, label_w), mix(box, conf_mix, conf_w),
                            mix(box, m["ign"], u["ign"]))
                  for logits_s, box in zip(p.logits_s, (u["box1"], u["box2"]))]
        return v1_unsup(strong[0], strong[1], self.term(p.logits_w_fp, label_w, conf_w, u["ign"]))


@METHODS.register("prevmatch")
class PrevMatch(UniMatch):
    """(L_x + L_std + λ·L_prev) / (2 + λ) once a snapshot exists; plain UniMatch before."""

    def __init__(self, cfg: RunConfig, model: nn.Module) -> None:
        super().__init__(cfg, model)
        self.prev = PrevGuidance(cfg, model)

    def guidance(self, p, batch):
        extras, terms = super().guidance(p, batch)
        terms = {**terms, "n_snapshots": torch.tensor(float(len(self.prev.store)))}
        loss_prev = self.prev.loss(p, batch)
        if loss_prev is None:
            return extras, terms
        lam = prev_lambda(self.epoch, self.cfg.train.epochs)
        return extras + [(loss_prev, lam)], {**terms, "loss_prev": loss_prev.detach(),
                                             "lambda_prev": torch.tensor(lam)}

    def end_epoch(self, trainer, result) -> None:
        self.prev.end_epoch(trainer, result)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "snapshots": self.prev.store.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.prev.store.load_state_dict(state["snapshots"])
