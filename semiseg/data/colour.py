"""The strong views' colour operations as Pillow computes them, on batches of uint8 images on any device.

The official pipelines apply torchvision's ``ColorJitter`` and ``RandomGrayscale`` and PIL's ``GaussianBlur`` to
PIL images, so the reference is Pillow's C arithmetic: ``Image.blend`` (a float32 interpolation, truncated and
clipped), the grey level ``L = (19595 R + 38470 G + 7471 B + 2^15) >> 16``, torchvision's hue shift through an
8-bit HSV round trip, and an extended box blur (three passes per axis in 8.24 fixed point, edge pixels repeated)
in place of a Gaussian kernel. torchvision's tensor functions and OpenCV compute none of these the same way (up
to 14 grey levels apart), so this is written by hand: each step repeats Pillow's integer, float32 and float64
operations in the same order (one torch kernel per C operation, so no fused multiply-add), which makes the
result equal to Pillow's, pixel for pixel. The worker path uses Pillow itself (:mod:`semiseg.data.transforms`);
this module serves the device path (:mod:`semiseg.data.device`), where a batch stays on the GPU.

All functions take ``x``: uint8 ``N x 3 x H x W`` and per-image float64 factors ``(N,)`` on ``x``'s device.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Pillow's 16.16 fixed-point ITU-R 601-2 luma weights (``ImagingConvert`` RGB → L)
_LUMA = (19595, 38470, 7471)
#: passes of Pillow's extended box blur per axis (``ImageFilter.GaussianBlur``)
BLUR_PASSES = 3


def grey(x: torch.Tensor) -> torch.Tensor:
    """Pillow's ``convert("L")`` of RGB images: N x 1 x H x W int32 in 0..255."""
    r, g, b = x.int().unbind(1)
    return ((_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b + 32768) >> 16).unsqueeze(1)


def blend(base: torch.Tensor, img: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``Image.blend(base, img, alpha)``: ``base + float32(alpha) * (img - base)`` in float32, clipped to 0..255
    and truncated (``base`` broadcasts against ``img``)."""
    base = base.float()
    out = img.float() - base
    out = out * alpha.float().view(-1, 1, 1, 1)
    out = base + out
    return out.clamp_(0, 255).to(torch.uint8)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Brightness``: a blend with black, ``0 + alpha * (x - 0)`` = ``alpha * x`` exactly."""
    out = x.float() * factor.float().view(-1, 1, 1, 1)
    return out.clamp_(0, 255).to(torch.uint8)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Contrast``: a blend with the image's mean grey level, rounded to an integer as
    ``int(ImageStat.mean + 0.5)`` (the mean of an integer sum, exact in float64)."""
    total = grey(x).sum(dim=(1, 2, 3), dtype=torch.int64).double()
    mean = torch.floor(total / (x.shape[2] * x.shape[3]) + 0.5)
    return blend(mean.view(-1, 1, 1, 1), x, factor)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``ImageEnhance.Color``: a blend with the image's own grey levels."""
    return blend(grey(x), x, factor)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """torchvision's PIL ``to_grayscale(img, 3)``: the grey level in all three channels."""
    return grey(x).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def _round_half_away(v: torch.Tensor) -> torch.Tensor:
    """C ``round`` of non-negative float64 values (halves away from zero; ``torch.round`` rounds to even)."""
    low = torch.floor(v)
    return low + (v - low >= 0.5)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pillow's ``rgb2hsv``: float32 ratios, float64 hue wrap, each channel truncated to 0..255."""
    r, g, b = x.unbind(1)
    maxc, minc = torch.maximum(torch.maximum(r, g), b), torch.minimum(torch.minimum(r, g), b)
    grey_px = maxc == minc
    cr = (maxc.float() - minc.float()).masked_fill_(grey_px, 1.0)
    s = cr / maxc.float().clamp_min(1.0)
    rc, gc, bc = ((maxc.float() - c.float()) / cr for c in (r, g, b))
    h = torch.where(r == maxc, bc - gc,
                    torch.where(g == maxc, (2.0 + rc.double() - bc.double()).float(),
                                (4.0 + gc.double() - rc.double()).float()))
    h = torch.fmod(h.double() / 6.0 + 1.0, 1.0).float()
    uh = (h.double() * 255.0).trunc().clamp_(0, 255).masked_fill_(grey_px, 0)
    us = (s.double() * 255.0).trunc().clamp_(0, 255).masked_fill_(grey_px, 0)
    return uh, us, maxc.double()


#: Pillow's ``hsv2rgb``: per hue sector (0..5), the candidate (v, t, p, q) each of R, G, B takes
_SECTORS = torch.tensor([[0, 3, 2, 2, 1, 0], [1, 0, 0, 3, 2, 2], [2, 2, 1, 0, 0, 3]])


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Pillow's ``hsv2rgb`` of float64 tensors holding 0..255 integers: N x 3 x H x W uint8."""
    scaled = h * 6.0 / 255.0
    sector = torch.floor(scaled)
    f = (scaled - sector).float()
    fs = (s / 255.0).float()
    p = _round_half_away(v * (1.0 - fs.double()))
    q = _round_half_away(v * (1.0 - (fs * f).double()))
    t = _round_half_away(v * (1.0 - fs.double() * (1.0 - f.double())))
    candidates = torch.stack([v, t, p, q], dim=1).to(torch.uint8)  # all in 0..255
    pick = _SECTORS.to(h.device)[:, sector.long() % 6].transpose(0, 1)  # N x 3 x H x W
    rgb = candidates.gather(1, pick)
    return torch.where((s == 0).unsqueeze(1), v.to(torch.uint8).unsqueeze(1), rgb)


def hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """torchvision's PIL ``adjust_hue``: RGB → 8-bit HSV, hue += ``uint8(int32(factor * 255))`` (wrapping),
    HSV → RGB."""
    h, s, v = _rgb_to_hsv(x)
    shift = torch.remainder(torch.trunc(factor.double() * 255), 256).view(-1, 1, 1)
    return _hsv_to_rgb(torch.remainder(h + shift, 256), s, v)


def box_weights(sigma: float) -> tuple[int, int, int]:
    """Pillow's extended box for ``GaussianBlur(radius=sigma)``: (integer radius r, weight of the 2r+1 inner
    taps, weight of the two outer taps), in 8.24 fixed point, with Pillow's float32/float64 steps."""
    f32 = np.float32
    sigma2 = f32(f32(sigma) * f32(sigma)) / f32(BLUR_PASSES)
    length = f32(math.sqrt(12.0 * float(sigma2) + 1.0))
    inner = f32(math.floor((float(length) - 1.0) / 2.0))
    frac = (f32(2) * inner + f32(1)) * (inner * (inner + f32(1)) - f32(3) * sigma2)
    frac = frac / (f32(6) * (sigma2 - (inner + f32(1)) * (inner + f32(1))))
    radius = f32(inner + frac)
    r = int(radius)
    ww = int(f32(1 << 24) / (radius * f32(2) + f32(1)))
    return r, ww, ((1 << 24) - (2 * r + 1) * ww) // 2


def _box_pass(x: torch.Tensor, dim: int, r: int, ww: torch.Tensor, fw: torch.Tensor) -> torch.Tensor:
    """One box pass of int64 images along ``dim`` (edge pixels repeated): ``(ww * sum of the 2r+1 inner taps +
    fw * the two outer taps + 2^23) >> 24``, with ``ww``/``fw`` per image."""
    n = x.shape[dim]
    first, last = x.narrow(dim, 0, 1), x.narrow(dim, n - 1, 1)
    padded = torch.cat([first] * (r + 1) + [x] + [last] * (r + 1), dim=dim)
    inner = padded.narrow(dim, 1, n).clone()
    for k in range(2, 2 * r + 2):
        inner += padded.narrow(dim, k, n)
    outer = padded.narrow(dim, 0, n) + padded.narrow(dim, 2 * r + 2, n)
    return (inner * ww + outer * fw + (1 << 23)) >> 24


def gaussian_blur(x: torch.Tensor, sigmas: list[float]) -> torch.Tensor:
    """``img.filter(ImageFilter.GaussianBlur(sigma))`` per image: three horizontal box passes, then three
    vertical ones, each rounded to 8 bits as Pillow's are (images grouped by their integer box radius)."""
    weights = [box_weights(s) for s in sigmas]
    out = x.clone()
    for r in sorted({w[0] for w in weights}):
        rows = [n for n, w in enumerate(weights) if w[0] == r]
        index = torch.tensor(rows, device=x.device)
        ww, fw = (torch.tensor([weights[n][k] for n in rows], dtype=torch.int64, device=x.device).view(-1, 1, 1, 1)
                  for k in (1, 2))
        img = x[index].long()
        for dim in (3, 3, 3, 2, 2, 2):
            img = _box_pass(img, dim, r, ww, fw)
        out[index] = img.to(torch.uint8)
    return out
