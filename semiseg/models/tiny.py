"""A small residual encoder that makes the built-in demo practical on a 2-core CPU."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1

from semiseg.models.registry import BACKBONES


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> BasicBlock:
    """A torchvision BasicBlock; dilation is set on its convs (BasicBlock's constructor refuses it)."""
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
    block = BasicBlock(cin, cout, stride, down)
    if dilation > 1:
        for conv in (block.conv1, block.conv2):
            conv.dilation, conv.padding = (dilation, dilation), (dilation, dilation)
    return block


class TinyEncoder(nn.Module):
    """Stem (stride 2) → stride-4 stage (c1, 32 ch) → stride-8 stage → dilated stage (c4, 64 ch).

    Widths chosen for cost (issue 23): with 128 channels in the last stage and a 64-wide head (1.04 M
    parameters) the demo's UniMatch step cost 1.8x this one on one AVX2 thread; output stride 16 would have
    been cheaper still but lost the demo's answer (docs/demo.md).
    """

    low_channels = 32
    high_channels = 64
    head_widths = {"aspp": 32, "reduce": 16, "decoder": 32}

    def __init__(self, output_stride: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True))
        self.layer1 = nn.Sequential(_block(24, 32, 2), _block(32, 32))
        last_stride = 2 if output_stride == 16 else 1
        self.layer2 = nn.Sequential(_block(32, 64, 2), _block(64, 64))
        self.layer3 = nn.Sequential(_block(64, 64, last_stride), _block(64, 64, dilation=2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c1 = self.layer1(self.stem(x))
        return c1, self.layer3(self.layer2(c1))


@BACKBONES.register("tiny")
def tiny(output_stride: int = 8) -> TinyEncoder:
    return TinyEncoder(output_stride)
