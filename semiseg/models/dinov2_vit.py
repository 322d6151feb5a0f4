"""DINOv2 ViT-S/B/L /14 encoders (docs/methods.md §1.3.3) on timm's VisionTransformer (registered by
:mod:`semiseg.models.dinov2`, which imports this module, and timm, only when one is built).

The state-dict layout equals the official ``dinov2_vit{s,b,l}14_pretrain.pth`` files except ``mask_token``
(used only for masked-image pre-training; the loader drops it). Position embeddings are interpolated the
DINOv2 way (bicubic with the +0.1 offset, no antialias), not timm's; attention runs through
``F.scaled_dot_product_attention`` (timm's fused path, forced on).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

PATCH = 14
#: The official checkpoints' 37×37 position grid (image size 518).
PRETRAIN_GRID = 37


@dataclass(frozen=True)
class DinoSize:
    embed_dim: int
    depth: int
    heads: int
    layers: tuple[int, int, int, int]  # 0-based blocks feeding the DPT head
    features: int  # DPT fusion width
    out_channels: tuple[int, int, int, int]  # DPT per-level projection widths


SIZES = {
    "small": DinoSize(384, 12, 6, (2, 5, 8, 11), 64, (48, 96, 192, 384)),
    "base": DinoSize(768, 12, 12, (2, 5, 8, 11), 128, (96, 192, 384, 768)),
    "large": DinoSize(1024, 24, 16, (4, 11, 17, 23), 256, (256, 512, 1024, 1024)),
}


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], offset: float = 0.1) -> torch.Tensor:
    """DINOv2's resize of a (1, 1+N², D) embedding to ``grid`` patches: bicubic with scale (g+offset)/N.

    The +offset keeps the output size at ``grid`` despite floating-point error; the resize uses the
    resulting scale factor (not the target size) and no antialias, as the official code.
    """
    n = int(math.sqrt(pos_embed.shape[1] - 1))
    if grid == (n, n):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:].float()
    dim = patch_pos.shape[-1]
    patch_pos = F.interpolate(patch_pos.reshape(1, n, n, dim).permute(0, 3, 1, 2),
                              scale_factor=((grid[0] + offset) / n, (grid[1] + offset) / n),
                              mode="bicubic", antialias=False)
    assert patch_pos.shape[-2:] == grid, (patch_pos.shape, grid)
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)
    return torch.cat([cls_pos, patch_pos], dim=1)


class DinoV2(VisionTransformer):
    """A DINOv2 ViT whose forward returns the 4 intermediate token maps (N×T×D) the DPT head reads.

    The intermediate outputs pass through the final LayerNorm; the cls token is dropped (docs/methods.md §1.3.3).
    """

    head = "dpt"  # read by build_model
    input_multiple = PATCH

    def __init__(self, size: str) -> None:
        spec = SIZES[size]
        super().__init__(img_size=PATCH * PRETRAIN_GRID, patch_size=PATCH, embed_dim=spec.embed_dim,
                         depth=spec.depth, num_heads=spec.heads, mlp_ratio=4.0, init_values=1.0, num_classes=0,
                         global_pool="", dynamic_img_size=True)
        self.size = spec
        for block in self.blocks:
            block.attn.fused_attn = True  # F.scaled_dot_product_attention

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (N, h, w, D) from the patch embedding → cls + tokens with interpolated position embeddings."""
        n, h, w, d = x.shape
        x = torch.cat([self.cls_token.expand(n, -1, -1), x.reshape(n, h * w, d)], dim=1)
        return self.pos_drop(x + interpolate_pos_embed(self.pos_embed, (h, w)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Token maps of the ⌊H/14⌋×⌊W/14⌋ patch grid (remainder pixels are dropped, as the official stride-14 conv)."""
        x = x[..., : x.shape[-2] // PATCH * PATCH, : x.shape[-1] // PATCH * PATCH]
        return self.forward_intermediates(x, list(self.size.layers), norm=True, output_fmt="NLC",
                                          intermediates_only=True, stop_early=True)

    @staticmethod
    def convert_pretrained(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Official DINOv2 keys → ours: drop ``mask_token``; un-chunk ``blocks.<chunk>.<i>.`` (block_chunks > 0)."""
        ignored = [k for k in state if k == "mask_token"]
        out = {}
        for key, value in state.items():
            if key not in ignored:
                out[re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)] = value
        return out, ignored

