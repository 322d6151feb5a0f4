"""Model zoo: encoders in a registry, segmentation heads on top.

``BACKBONES.names('resnet*')`` lists encoders; :func:`build_model` builds the segmentation network
for a run config.
"""

from __future__ import annotations

from semiseg.models.registry import BACKBONES, build_model, count_parameters, load_pretrained
from semiseg.models import resnet, tiny  # noqa: F401  (register encoders)

__all__ = ["BACKBONES", "build_model", "count_parameters", "load_pretrained"]
