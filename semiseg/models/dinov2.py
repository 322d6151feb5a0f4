"""Registers the DINOv2 ViT-S/B/L /14 encoders. The model (:mod:`semiseg.models.dinov2_vit`) and timm are
imported only when one is built, so runs on other encoders never pay timm's import."""

from __future__ import annotations

from semiseg.models.registry import BACKBONES

#: The ViT patch (``dinov2_vit.PATCH``): inputs are cropped to a multiple of it.
PATCH = 14
SIZES = ("small", "base", "large")


def _register(size: str) -> None:
    @BACKBONES.register(f"dinov2_{size}", head="dpt", input_multiple=PATCH)
    def build(output_stride: int = 16):
        """DINOv2 ViT-{size}/14 (``output_stride`` does not apply: a ViT has patch stride 14)."""
        from semiseg.models.dinov2_vit import DinoV2

        return DinoV2(size)


for _size in SIZES:
    _register(_size)
