"""The method interface shared by every training method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from semiseg.config import RunConfig
from semiseg.losses import labeled_loss
from semiseg.registry import Registry

METHODS: Registry = Registry("method")


@dataclass
class StepOutput:
    """The loss to back-propagate and the named terms to log (detached scalars)."""

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)


class Method:
    """One training method over the shared trainer.

    ``streams`` names the loaders the method consumes each iteration (``labeled``, ``unlabeled``,
    ``mix``); :meth:`step` receives one batch per stream and returns a :class:`StepOutput`.
    """

    streams: tuple[str, ...] = ("labeled",)
    #: extra keyword arguments of :func:`semiseg.models.build_model` this method needs (e.g. CorrMatch's branch)
    model_kwargs: dict[str, Any] = {}
    #: the encoder head the method needs ("" = any), checked by :mod:`semiseg.catalog` at plan time
    needs_head: str = ""
    #: a true/false config key that switches ``needs_head`` on ("" = always), e.g. ``unimatch_v2.comp_drop``
    needs_head_when: str = ""

    def __init__(self, cfg: RunConfig, model: nn.Module) -> None:
        self.cfg = cfg
        self.model = model
        self.thresh = cfg.loss.conf_thresh
        self.epoch = 0

    def begin_epoch(self, epoch: int) -> None:
        """Called by the trainer before the iterations of (0-based) ``epoch``."""
        self.epoch = epoch

    def end_epoch(self, trainer, result) -> None:
        """Called after each epoch's evaluation and before its checkpoint, with the epoch's
        :class:`~semiseg.hooks.EpochResult` (``result.is_best``: the reported model improved)."""

    def labeled_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.cfg.loss
        return labeled_loss(logits, target, loss.criterion, loss.ohem_thresh, loss.ohem_min_kept)

    @torch.no_grad()
    def eval_forward(self, images: torch.Tensor) -> torch.Tensor:
        """An eval-mode forward (BN running stats), then back to train mode: the Style-A mix teacher."""
        self.model.eval()
        try:
            return self.model(images)
        finally:
            self.model.train()

    def step(self, batch: dict[str, dict[str, torch.Tensor]]) -> StepOutput:
        raise NotImplementedError

    def after_step(self, iteration: int) -> None:
        """Called after the optimizer step of global iteration ``iteration`` (0-based), e.g. an EMA update."""

    def eval_models(self) -> dict[str, nn.Module]:
        """The models evaluated after every epoch, by name (``student`` always; ``ema`` for V2 methods)."""
        return {"student": self.model}

    def state_dict(self) -> dict[str, Any]:
        """Method state beyond the model and optimizer (saved in checkpoints)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
