"""ResNet-50/101 with the deep stem of the official DeepLabV3+ code (spec §1.3.1), built on torchvision."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from semiseg.models.registry import BACKBONES


class DeepStemResNet(ResNet):
    """torchvision ResNet with the 3×(3×3 conv) stem (64-64-128), layer1 input width 128, returning (c1, c4)."""

    low_channels = 256
    high_channels = 2048

    def __init__(self, layers: list[int], output_stride: int = 16) -> None:
        dilate = [False, False, True] if output_stride == 16 else [False, True, True]
        super().__init__(Bottleneck, layers, replace_stride_with_dilation=dilate)
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 128, 3, 1, 1, bias=False))
        self.bn1 = nn.BatchNorm2d(128)
        self.inplanes, self.dilation = 128, 1
        self.layer1 = self._make_layer(Bottleneck, 64, layers[0])
        del self.fc, self.avgpool

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c4 = self.layer4(self.layer3(self.layer2(c1)))
        return c1, c4


@BACKBONES.register("resnet50")
def resnet50(output_stride: int = 16) -> DeepStemResNet:
    return DeepStemResNet([3, 4, 6, 3], output_stride)


@BACKBONES.register("resnet101")
def resnet101(output_stride: int = 16) -> DeepStemResNet:
    return DeepStemResNet([3, 4, 23, 3], output_stride)
