"""Model zoo: encoders in a registry, segmentation heads on top.

``BACKBONES.names('resnet*')`` lists encoders (deep-stem and torchvision ResNets, Xception-65, DINOv2
S/B/L, the demo's ``tiny``); :func:`build_model` builds the segmentation network for a run config
(DeepLabV3+, or DPT for DINOv2 encoders).
"""

from __future__ import annotations

from semiseg.models.registry import BACKBONES, build_model, count_parameters, load_pretrained
from semiseg.models import dinov2, resnet, tiny, xception  # noqa: F401  (register encoders)

__all__ = ["BACKBONES", "build_model", "count_parameters", "load_pretrained"]
