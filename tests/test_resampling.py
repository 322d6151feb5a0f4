"""The random rescale matches the official PIL pipeline (docs/methods.md §1.2): masks exactly like PIL NEAREST, images
within one grey level of PIL BILINEAR, on random images and scales, shrinking and enlarging."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semiseg.data.transforms import random_rescale, resize_image, resize_mask


def pil_rescale(img: np.ndarray, mask: np.ndarray, oh: int, ow: int) -> tuple[np.ndarray, np.ndarray]:
    """The official transform: PIL images resized with BILINEAR and NEAREST."""
    return (np.asarray(Image.fromarray(img).resize((ow, oh), Image.BILINEAR)),
            np.asarray(Image.fromarray(mask).resize((ow, oh), Image.NEAREST)))


def random_case(rng: np.random.Generator, scale: tuple[float, float]):
    h, w = (int(v) for v in rng.integers(8, 260, 2))
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = rng.integers(0, 40, (h, w), dtype=np.uint8)
    s = rng.uniform(*scale)
    oh, ow = max(int(h * s + 0.5), 1), max(int(w * s * rng.uniform(0.9, 1.1) + 0.5), 1)
    return img, mask, oh, ow


@pytest.mark.parametrize("scale", [(0.2, 0.95), (1.05, 2.5), (0.5, 2.0)], ids=["down", "up", "mixed"])
def test_resize_matches_pil(scale):
    rng = np.random.default_rng(7)
    for _ in range(40):
        img, mask, oh, ow = random_case(rng, scale)
        ref_img, ref_mask = pil_rescale(img, mask, oh, ow)
        out_img, out_mask = resize_image(img, oh, ow), resize_mask(mask, oh, ow)
        assert out_img.shape == ref_img.shape and out_img.dtype == np.uint8 and out_img.flags["C_CONTIGUOUS"]
        assert np.abs(out_img.astype(int) - ref_img).max() <= 1
        assert np.array_equal(out_mask, ref_mask)


def test_random_rescale_is_the_official_transform():
    """The official long-side draw and rounding, then PIL's resampling, on image-like and noise inputs."""
    rng = np.random.default_rng(0)
    shrunk = grown = 0
    for seed in range(60):
        img, mask, _, _ = random_case(rng, (1, 1))
        h, w = mask.shape
        draw = np.random.default_rng(seed)
        long_side = max(h, w)
        new_long = int(draw.integers(int(long_side * 0.5), int(long_side * 2.0) + 1))
        oh, ow = (new_long, int(w * new_long / h + 0.5)) if h > w else (int(h * new_long / w + 0.5), new_long)
        ref_img, ref_mask = pil_rescale(img, mask, oh, ow)
        out_img, out_mask = random_rescale(img, mask, np.random.default_rng(seed))
        assert np.array_equal(out_mask, ref_mask) and np.abs(out_img.astype(int) - ref_img).max() <= 1
        shrunk, grown = shrunk + (new_long < long_side), grown + (new_long > long_side)
    assert shrunk > 10 and grown > 10


def test_opencv_linear_and_nearest_were_not_pil():
    """Why the resize changed: OpenCV's defaults are off PIL by many levels / whole pixels on a downscale."""
    import cv2

    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    mask = rng.integers(0, 40, (120, 160), dtype=np.uint8)
    ref_img, ref_mask = pil_rescale(img, mask, 70, 93)
    assert np.abs(cv2.resize(img, (93, 70), interpolation=cv2.INTER_LINEAR).astype(int) - ref_img).max() > 20
    assert (cv2.resize(mask, (93, 70), interpolation=cv2.INTER_NEAREST) != ref_mask).mean() > 0.01
