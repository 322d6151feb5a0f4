"""Supervised baseline (docs/methods.md §2.1): labeled loss only."""

from __future__ import annotations

from semiseg.methods.base import METHODS, Method, StepOutput


@METHODS.register("supervised")
class Supervised(Method):
    streams = ("labeled",)

    def step(self, batch):
        x, y = batch["labeled"]["img"], batch["labeled"]["mask"]
        loss = self.labeled_loss(self.model(x), y)
        return StepOutput(loss, {"loss_x": loss.detach()})
