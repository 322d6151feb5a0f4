"""Xception-65 of the official DeepLabV3+ code (docs/methods.md §1.3.1), with its parameter names.

Keys match ``pretrained/xception.pth`` of UniMatch V1 / PrevMatch: ``conv1``, ``bn1``, ``conv2``, ``bn2``,
``block1``…``block20`` (``skip``, ``skipbn``, ``sepconv{1,2,3}``) and ``conv3``…``conv5``; each separable
conv holds ``depthwise``, ``bn1``, ``pointwise``, ``bn2``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from semiseg.models.registry import BACKBONES

#: The official code builds every BN with momentum 0.0003 (PyTorch convention) [QUIRK, reproduced].
BN_MOMENTUM = 0.0003


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class SeparableConv2d(nn.Module):
    """Depthwise 3×3 → BN → pointwise 1×1 → BN; ReLU first (``activate_first``) or after each BN."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, activate_first: bool = True) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, dilation, dilation, groups=cin, bias=False)
        self.bn1 = _bn(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = _bn(cout)
        self.activate_first = activate_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate_first:
            return self.bn2(self.pointwise(self.bn1(self.depthwise(F.relu(x)))))
        x = F.relu(self.bn1(self.depthwise(x)))
        return F.relu(self.bn2(self.pointwise(x)))


class Block(nn.Module):
    """Three separable convs (the last one strided) plus a residual; 1×1 conv + BN skip when the shape changes.

    The official block applies its first ReLU in place on the input when there is no skip conv, so the
    residual it adds is ReLU(input) [QUIRK, reproduced]. ``low_level`` keeps the 2nd conv's output.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1, grow_first: bool = True) -> None:
        super().__init__()
        if cout != cin or stride != 1:
            self.skip = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
            self.skipbn = _bn(cout)
        else:
            self.skip = None
        mid = cout if grow_first else cin
        self.sepconv1 = SeparableConv2d(cin, mid, 1, dilation)
        self.sepconv2 = SeparableConv2d(mid, cout, 1, dilation)
        self.sepconv3 = SeparableConv2d(cout, cout, stride, dilation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(block output, output of the 2nd separable conv)."""
        skip = self.skipbn(self.skip(x)) if self.skip is not None else F.relu(x)
        low = self.sepconv2(self.sepconv1(x))
        return self.sepconv3(low) + skip, low


class Xception65(nn.Module):
    """Entry flow (blocks 1–3), middle flow (blocks 4–19), exit flow (block 20, conv3–5); returns (c1, c4).

    ``c1`` is block 2's 2nd separable conv output (256 ch, stride 4); ``c4`` has 2048 ch at the output stride.
    """

    low_channels = 256
    high_channels = 2048

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        strides = {16: (2, 2, 1), 8: (2, 1, 1)}[output_stride]
        rate = 16 // output_stride
        self.conv1 = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self.bn1 = _bn(32)
        self.conv2 = nn.Conv2d(32, 64, 3, 1, 1, bias=False)
        self.bn2 = _bn(64)
        self.block1 = Block(64, 128, 2)
        self.block2 = Block(128, 256, strides[0])
        self.block3 = Block(256, 728, strides[1])
        for i in range(4, 20):
            setattr(self, f"block{i}", Block(728, 728, 1, rate))
        self.block20 = Block(728, 1024, strides[2], rate, grow_first=False)
        self.conv3 = SeparableConv2d(1024, 1536, 1, rate, activate_first=False)
        self.conv4 = SeparableConv2d(1536, 1536, 1, rate, activate_first=False)
        self.conv5 = SeparableConv2d(1536, 2048, 1, rate, activate_first=False)
        for m in self.modules():  # the official init
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x, _ = self.block1(x)
        x, c1 = self.block2(x)
        for i in range(3, 21):
            x, _ = getattr(self, f"block{i}")(x)
        return c1, self.conv5(self.conv4(self.conv3(x)))

    @staticmethod
    def convert_pretrained(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Drop the keys the official loader filters out (names containing 'itr', 'tmp' or 'track')."""
        ignored = [k for k in state if any(word in k for word in ("itr", "tmp", "track"))]
        return {k: v for k, v in state.items() if k not in ignored}, ignored


@BACKBONES.register("xception")
def xception(output_stride: int = 16) -> Xception65:
    return Xception65(output_stride)
