"""The encoder registry, weight loading and the model factory."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from semiseg.errors import ConfigError
from semiseg.registry import Registry

#: name → factory(output_stride: int) returning an encoder whose forward gives (c1, c4) and which
#: exposes ``low_channels`` and ``high_channels`` (and optionally ``head_widths``).
BACKBONES: Registry = Registry("backbone")


def load_pretrained(module: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a local weights file into ``module`` (non-strict) and report missing/unexpected keys.

    A file whose tensors do not fit the architecture (shape mismatch, or no key in common) is rejected
    with a message naming the file and the first offending keys.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.pretrained: weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ConfigError(f"model.pretrained: cannot load {path} as a PyTorch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"model.pretrained: {path} does not hold a state dict")
    own = module.state_dict()
    mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    common = [k for k in state if k in own]
    if mismatched or not common:
        detail = "; ".join(mismatched[:5]) if mismatched else "no parameter names in common"
        raise ConfigError(f"model.pretrained: {path} does not match the {type(module).__name__} encoder ({detail})")
    result = module.load_state_dict(state, strict=False)
    return {"missing": list(result.missing_keys), "unexpected": list(result.unexpected_keys)}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_model(cfg, num_classes: int, corr: bool = False) -> nn.Module:
    """The segmentation network for run config ``cfg`` (DeepLabV3+ over the configured encoder).

    ``corr`` adds CorrMatch's correlation branch (a method asks for it via ``Method.model_kwargs``).
    """
    from semiseg.models.deeplabv3plus import DeepLabV3Plus

    encoder = BACKBONES.get(cfg.model.backbone)(cfg.model.output_stride)
    if cfg.model.pretrained:
        load_pretrained(encoder, cfg.model.pretrained)
    return DeepLabV3Plus(encoder, num_classes, tuple(cfg.model.aspp_dilations), corr=corr)
