"""DeepLabV3+ head of the official code (docs/methods.md §1.3.1), with the UniMatch feature-perturbation forward."""

from __future__ import annotations

import math

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


class Correlation(nn.Module):
    """CorrMatch's correlation head (docs/methods.md §1.3.2): an affinity A over the positions of projected c4
    features."""

    def __init__(self, cin: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(cin, width, 3, padding=1, bias=True), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.Dropout2d(0.1))
        self.conv1 = nn.Conv2d(width, num_classes, 1)
        self.conv2 = nn.Conv2d(width, num_classes, 1)

    def forward(self, c4: torch.Tensor, logits: torch.Tensor, num_regions: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(corr_out at the logits' size, region maps N×num_regions×H×W bool) from c4 and the (detached) logits.

        ``A = softmax_j(conv1(F)ᵀ·conv2(F) / sqrt(C))``; ``corr_out = z_d·A`` with ``z_d`` the detached logits
        downsampled to F's size. Region maps: ``num_regions`` rows of A (indices from ``randint(0, hw−1)``,
        shared by the batch), upsampled, min-max normalised per row and thresholded at 0.5.
        """
        feat = self.proj(c4)
        n, _, h, w = feat.shape
        size = logits.shape[-2:]
        f1, f2 = self.conv1(feat).flatten(2), self.conv2(feat).flatten(2)
        attn = (f1.transpose(1, 2) @ f2 / math.sqrt(f1.shape[1])).softmax(dim=-1)
        z = F.interpolate(logits.detach(), size=(h, w), mode="bilinear", align_corners=True).flatten(2)
        corr_out = F.interpolate((z @ attn).view(n, -1, h, w), size=size, mode="bilinear", align_corners=True)
        idx = torch.randint(0, h * w - 1, (num_regions,), device=attn.device)
        rows = attn.detach()[:, idx, :].view(n, num_regions, h, w)
        rows = F.interpolate(rows, size=size, mode="bilinear", align_corners=True).flatten(2)
        low, high = rows.amin(2, keepdim=True), rows.amax(2, keepdim=True)
        regions = (rows - low) > 0.5 * (high - low)  # (r − min)/(max − min) > 0.5, False for a constant row
        return corr_out, regions.view(n, num_regions, *size)


class DeepLabV3Plus(nn.Module):
    """Encoder (``backbone``) → ASPP on c4 → decoder fused with reduced c1 → classifier → upsample.

    With ``corr=True`` the model also carries CorrMatch's correlation head, used by ``forward(corr=True)``.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, rates: tuple[int, int, int] = (6, 12, 18),
                 corr: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        widths = getattr(backbone, "head_widths", {"aspp": backbone.high_channels // 8, "reduce": 48,
                                                   "decoder": 256})
        self.head = ASPP(backbone.high_channels, widths["aspp"], rates)
        self.reduce = _conv_bn_relu(backbone.low_channels, widths["reduce"])
        self.fuse = nn.Sequential(_conv_bn_relu(widths["aspp"] + widths["reduce"], widths["decoder"], 3),
                                  _conv_bn_relu(widths["decoder"], widths["decoder"], 3))
        self.classifier = nn.Conv2d(widths["decoder"], num_classes, 1)
        self.corr = Correlation(backbone.high_channels, widths["aspp"], num_classes) if corr else None

    def decode(self, c1: torch.Tensor, c4: torch.Tensor) -> torch.Tensor:
        c4 = self.head(c4)
        c4 = F.interpolate(c4, size=c1.shape[-2:], mode="bilinear", align_corners=True)
        return self.classifier(self.fuse(torch.cat([self.reduce(c1), c4], dim=1)))

    def forward(self, x: torch.Tensor, need_fp: bool = False, corr: bool = False, num_regions: int = 128):
        """Logits at the input size; with ``need_fp`` also the logits of Dropout2d(0.5)-perturbed features.

        The FP forward runs the head once on ``cat(clean, dropped)`` so BN sees both (as the official code).
        ``corr`` (a model built with ``corr=True``) is CorrMatch's pass: a dict of ``out`` (and ``out_fp``),
        ``corr_out`` and ``corr_map`` from the clean c4 and logits. Every pass is a ``forward`` so that it
        runs through the DDP wrapper (see :mod:`semiseg.distributed`).
        """
        logits, c4 = self._forward(x, need_fp)
        if not corr:
            return logits
        if self.corr is None:
            raise RuntimeError("forward(corr=True) needs a model built with corr=True")
        result = dict(zip(("out", "out_fp"), logits)) if need_fp else {"out": logits}
        result["corr_out"], result["corr_map"] = self.corr(c4, result["out"], num_regions)
        return result

    def _forward(self, x: torch.Tensor, need_fp: bool):
        """(logits or (clean, perturbed) logits, c4)."""
        size = x.shape[-2:]
        c1, c4 = self.backbone(x)
        if need_fp:
            out = self.decode(torch.cat([c1, F.dropout2d(c1, 0.5, training=True)]),
                              torch.cat([c4, F.dropout2d(c4, 0.5, training=True)]))
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=True)
            return out.chunk(2), c4
        return F.interpolate(self.decode(c1, c4), size=size, mode="bilinear", align_corners=True), c4
