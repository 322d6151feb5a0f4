"""The EMA teacher shared by the V2 methods (docs/methods.md §2.4): a frozen, always-eval copy of the student."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from semiseg.config import RunConfig
from semiseg.distributed import unwrap
from semiseg.losses import ema_ratio, pseudo_labels
from semiseg.methods.base import Method


@torch.no_grad()
def ema_update_(ema: nn.Module, model: nn.Module, alpha: float) -> None:
    """θ_ema ← α·θ_ema + (1 − α)·θ for every parameter and floating buffer, in a few fused ``_foreach`` ops.

    Integer buffers (BN ``num_batches_tracked``) are copied from the student.
    """
    ema_p, p = list(ema.parameters()), [t.detach() for t in model.parameters()]
    pairs = list(zip(ema.buffers(), model.buffers()))
    ema_p += [e for e, _ in pairs if e.is_floating_point()]
    p += [b for e, b in pairs if e.is_floating_point()]
    torch._foreach_mul_(ema_p, alpha)
    torch._foreach_add_(ema_p, p, alpha=1 - alpha)
    for e, b in pairs:
        if not e.is_floating_point():
            e.copy_(b)


class EMATeacherMethod(Method):
    """A method whose pseudo-labels come from an EMA teacher (eval mode, no grad), updated after every step.

    Both the student and the EMA model are evaluated every epoch; the EMA weights are saved with the
    method state, so a resume continues the same teacher.
    """

    streams = ("labeled", "unlabeled")

    def __init__(self, cfg: RunConfig, model: nn.Module) -> None:
        super().__init__(cfg, model)
        self.ema = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)  # not the DDP wrapper

    @torch.no_grad()
    def teacher(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(confidence, pseudo-label) of the EMA teacher on ``images``."""
        return pseudo_labels(self.ema(images))

    def after_step(self, iteration: int) -> None:
        ema_update_(self.ema, self.model, ema_ratio(iteration, self.cfg.ema.decay))

    def eval_models(self) -> dict[str, nn.Module]:
        return {"student": self.model, "ema": self.ema}

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ema.load_state_dict(state["ema"])
