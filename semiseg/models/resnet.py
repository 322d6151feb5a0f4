"""ResNet-50/101 on torchvision: the deep stem of the official DeepLabV3+ code (docs/methods.md §1.3.1), and the
plain one.

``resnet50``/``resnet101`` load the official ``pretrained/resnet{50,101}.pth``; ``tv_resnet50``/``tv_resnet101``
(torchvision's own stem) load torchvision's ImageNet files, e.g. ``resnet50-0676ba61.pth``.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from semiseg.models.registry import BACKBONES


def _convert_pretrained(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Drop the ImageNet classifier (``fc.*``), which the segmentation encoder does not have."""
    ignored = [k for k in state if k.startswith("fc.")]
    return {k: v for k, v in state.items() if k not in ignored}, ignored


def _dilation(output_stride: int) -> list[bool]:
    return [False, False, True] if output_stride == 16 else [False, True, True]


class TorchvisionResNet(ResNet):
    """torchvision's standard ResNet (7×7 stem, torchvision weight files), returning (c1, c4).

    Not the papers' encoder (docs/methods.md §1.3.1): offered for comparisons only.
    """

    low_channels = 256
    high_channels = 2048

    def __init__(self, layers: list[int], output_stride: int = 16) -> None:
        super().__init__(Bottleneck, layers, replace_stride_with_dilation=_dilation(output_stride))
        del self.fc, self.avgpool

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        return c1, self.layer4(self.layer3(self.layer2(c1)))

    convert_pretrained = staticmethod(_convert_pretrained)


class DeepStemResNet(TorchvisionResNet):
    """The 3×(3×3 conv) stem (64-64-128, keys ``conv1.{0,1,3,4,6}``, ``bn1``) and layer1 input width 128."""

    def __init__(self, layers: list[int], output_stride: int = 16) -> None:
        super().__init__(layers, output_stride)
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, 3, 1, 1, bias=False))
        self.bn1 = nn.BatchNorm2d(128)
        self.inplanes, self.dilation = 128, 1
        self.layer1 = self._make_layer(Bottleneck, 64, layers[0])


@BACKBONES.register("resnet50")
def resnet50(output_stride: int = 16) -> DeepStemResNet:
    return DeepStemResNet([3, 4, 6, 3], output_stride)


@BACKBONES.register("resnet101")
def resnet101(output_stride: int = 16) -> DeepStemResNet:
    return DeepStemResNet([3, 4, 23, 3], output_stride)


@BACKBONES.register("tv_resnet50")
def tv_resnet50(output_stride: int = 16) -> TorchvisionResNet:
    return TorchvisionResNet([3, 4, 6, 3], output_stride)


@BACKBONES.register("tv_resnet101")
def tv_resnet101(output_stride: int = 16) -> TorchvisionResNet:
    return TorchvisionResNet([3, 4, 23, 3], output_stride)
