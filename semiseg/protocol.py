"""Evaluation protocols (docs/methods.md §1.6): which protocol a run uses and when; no torch, no data.

* ``original``: the whole image at native resolution (optionally resized to a multiple of 14, UniMatch V2).
* ``center_crop``: only the central crop×crop region of image and mask (CorrMatch on Cityscapes).
* ``sliding_window``: softmax probabilities of crop×crop windows summed, argmax at the end; border windows
  are ``truncate``-d (V1, PrevMatch, CorrMatch) or ``shift``-ed to stay full size (V2).

:mod:`semiseg.evaluate` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EvalProtocol:
    """A resolved evaluation protocol (no 'auto', no zero placeholders)."""

    mode: str = "original"
    crop: int = 0
    stride: int = 0
    rule: str = "truncate"
    multiple: int = 0
    window_batch: int = 1

    def describe(self) -> str:
        parts = {"original": [], "center_crop": [f"crop={self.crop}"],
                 "sliding_window": [f"crop={self.crop}", f"stride={self.stride}", self.rule]}[self.mode]
        if self.multiple:
            parts.append(f"multiple={self.multiple}")
        return f"{self.mode}({', '.join(parts)})" if parts else self.mode


def resolve_protocol(eval_cfg, dataset_default: str, train_crop: int) -> EvalProtocol:
    """The protocol of an ``EvalConfig``: 'auto' → the dataset default, 0 sizes → the official defaults."""
    mode = dataset_default if eval_cfg.mode == "auto" else eval_cfg.mode
    crop = eval_cfg.crop_size or train_crop
    stride = eval_cfg.stride or int(crop * 2 / 3)
    return EvalProtocol(mode, crop, stride, eval_cfg.window_rule, eval_cfg.multiple, eval_cfg.window_batch)


def epoch_protocol(protocol: EvalProtocol, epoch: int, epochs: int, center_crop_until_last: int) -> EvalProtocol:
    """The protocol for (0-based) ``epoch`` of ``epochs``: a central crop of the same size before the last
    ``center_crop_until_last`` epochs (CorrMatch's Cityscapes schedule), ``protocol`` otherwise."""
    if center_crop_until_last and epoch < epochs - center_crop_until_last:
        return replace(protocol, mode="center_crop")
    return protocol


def evaluates_after(epoch: int, epochs: int, every_n_epochs: int) -> bool:
    """Whether the run evaluates after (1-based) ``epoch`` of ``epochs``: every ``eval.every_n_epochs``-th
    epoch and the last one. A function of the epoch number only, so a resumed run evaluates on the same ones."""
    return epoch % every_n_epochs == 0 or epoch == epochs


def describe_schedule(protocol: EvalProtocol, epochs: int, center_crop_until_last: int) -> str:
    """The protocol of every epoch in words: ``protocol.describe()``, or which epochs use the central crop."""
    early = epoch_protocol(protocol, 0, epochs, center_crop_until_last)
    if early == protocol:
        return protocol.describe()
    return f"{early.describe()} in epochs 1-{epochs - center_crop_until_last}, then {protocol.describe()}"
