"""DPT segmentation head over a DINOv2 encoder (docs/methods.md §1.3.3), with UniMatch V2's Complementary Dropout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def complementary_masks(pairs: int, dim: int, device: torch.device | str = "cpu",
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """The (2·pairs)×dim channel mask ``cat(m1, 2 − m1)`` of Complementary Dropout.

    ``m1`` is 2·Bernoulli(0.5) per sample and channel; ``int(pairs·0.5)`` pairs, drawn without
    replacement, get all-ones in both halves (left unperturbed).
    """
    m1 = torch.randint(0, 2, (pairs, dim), generator=generator).float() * 2.0
    m2 = 2.0 - m1
    kept = torch.randperm(pairs, generator=generator)[: int(pairs * 0.5)]
    m1[kept] = 1.0
    m2[kept] = 1.0
    return torch.cat([m1, m2]).to(device)


class ResidualConvUnit(nn.Module):
    """ReLU → 3×3 conv → ReLU → 3×3 conv, plus the identity (no BN)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FusionBlock(nn.Module):
    """``out = x (+ RCU1(skip))`` → RCU2 → bilinear resize (align_corners) → 1×1 conv."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.rcu1 = ResidualConvUnit(width)
        self.rcu2 = ResidualConvUnit(width)
        self.out_conv = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        if skip is not None:
            x = x + self.rcu1(skip)
        x = F.interpolate(self.rcu2(x), size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """Project the 4 token maps, resize them to strides ×4, ×2, ×1, ÷2 of the patch grid, fuse top-down, classify."""

    def __init__(self, embed_dim: int, features: int, out_channels: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.projects = nn.ModuleList(nn.Conv2d(embed_dim, c, 1) for c in out_channels)
        c = out_channels
        self.resize = nn.ModuleList([nn.ConvTranspose2d(c[0], c[0], 4, stride=4),
                                     nn.ConvTranspose2d(c[1], c[1], 2, stride=2),
                                     nn.Identity(), nn.Conv2d(c[3], c[3], 3, stride=2, padding=1)])
        self.rn = nn.ModuleList(nn.Conv2d(ch, features, 3, padding=1, bias=False) for ch in out_channels)
        self.fusion = nn.ModuleList(FusionBlock(features) for _ in out_channels)
        # the deepest block has no skip input, so its RCU1 never runs (in the official DPT too); it stays for the
        # checkpoint keys but is frozen, so every trained parameter is in the graph (DDP without unused ones)
        self.fusion[-1].rcu1.requires_grad_(False)
        self.output = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True),
                                    nn.Conv2d(features, num_classes, 1))

    def forward(self, tokens: list[torch.Tensor], ph: int, pw: int) -> torch.Tensor:
        levels = []
        for i, t in enumerate(tokens):
            x = t.permute(0, 2, 1).reshape(t.shape[0], t.shape[-1], ph, pw)
            levels.append(self.rn[i](self.resize[i](self.projects[i](x))))
        l1, l2, l3, l4 = levels
        path = self.fusion[3](l4, None, l3.shape[-2:])
        path = self.fusion[2](path, l3, l2.shape[-2:])
        path = self.fusion[1](path, l2, l1.shape[-2:])
        path = self.fusion[0](path, l1, (2 * l1.shape[-2], 2 * l1.shape[-1]))
        return self.output(path)


class DPT(nn.Module):
    """DINOv2 encoder (``backbone``) + DPT head; logits at (14·⌊H/14⌋, 14·⌊W/14⌋)."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        size = backbone.size
        self.head = DPTHead(backbone.embed_dim, size.features, size.out_channels, num_classes)
        self.input_multiple = backbone.input_multiple

    def forward(self, x: torch.Tensor, comp_drop: bool = False) -> torch.Tensor:
        """Logits; with ``comp_drop`` (batch = cat(s1, s2)) the 4 token maps get complementary channel masks."""
        p = self.input_multiple
        ph, pw = x.shape[-2] // p, x.shape[-1] // p
        tokens = self.backbone(x)
        if comp_drop:
            n, dim = tokens[0].shape[0], tokens[0].shape[-1]
            if n % 2:
                raise ValueError(f"comp_drop needs the batch cat(s1, s2) of even size, got {n}")
            mask = complementary_masks(n // 2, dim, x.device).to(tokens[0].dtype).unsqueeze(1)
            tokens = [t * mask for t in tokens]
        out = self.head(tokens, ph, pw)
        return F.interpolate(out, size=(ph * p, pw * p), mode="bilinear", align_corners=True)
