"""DeepLabV3+ head of the official code (spec §1.3.1), with the UniMatch feature-perturbation forward."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = 0 if kernel == 1 else dilation
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPPPooling(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _conv_bn_relu(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=True)


class ASPP(nn.Module):
    """1×1 branch, three atrous 3×3 branches and image pooling, concatenated and projected."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, int, int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(cin, cout)]
                                      + [_conv_bn_relu(cin, cout, 3, r) for r in rates]
                                      + [ASPPPooling(cin, cout)])
        self.project = _conv_bn_relu(5 * cout, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))


class DeepLabV3Plus(nn.Module):
    """Encoder (``backbone``) → ASPP on c4 → decoder fused with reduced c1 → classifier → upsample."""

    def __init__(self, backbone: nn.Module, num_classes: int, rates: tuple[int, int, int] = (6, 12, 18)) -> None:
        super().__init__()
        self.backbone = backbone
        widths = getattr(backbone, "head_widths", {"aspp": backbone.high_channels // 8, "reduce": 48,
                                                   "decoder": 256})
        self.head = ASPP(backbone.high_channels, widths["aspp"], rates)
        self.reduce = _conv_bn_relu(backbone.low_channels, widths["reduce"])
        self.fuse = nn.Sequential(_conv_bn_relu(widths["aspp"] + widths["reduce"], widths["decoder"], 3),
                                  _conv_bn_relu(widths["decoder"], widths["decoder"], 3))
        self.classifier = nn.Conv2d(widths["decoder"], num_classes, 1)

    def decode(self, c1: torch.Tensor, c4: torch.Tensor) -> torch.Tensor:
        c4 = self.head(c4)
        c4 = F.interpolate(c4, size=c1.shape[-2:], mode="bilinear", align_corners=True)
        return self.classifier(self.fuse(torch.cat([self.reduce(c1), c4], dim=1)))

    def forward(self, x: torch.Tensor, need_fp: bool = False):
        """Logits at the input size; with ``need_fp`` also the logits of Dropout2d(0.5)-perturbed features.

        The FP forward runs the head once on ``cat(clean, dropped)`` so BN sees both (as the official code).
        """
        size = x.shape[-2:]
        c1, c4 = self.backbone(x)
        if need_fp:
            out = self.decode(torch.cat([c1, F.dropout2d(c1, 0.5, training=True)]),
                              torch.cat([c4, F.dropout2d(c4, 0.5, training=True)]))
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
            return out.chunk(2)
        return F.interpolate(self.decode(c1, c4), size=size, mode="bilinear", align_corners=True)
