"""CutMix box sampler statistics (docs/methods.md §1.2) and the strong colour pipeline's basic contract."""

import numpy as np
import pytest

from semiseg.data.transforms import cutmix_box, strong_colour


def boxes(n=4000, size=64, seed=0):
    rng = np.random.default_rng(seed)
    return [cutmix_box(size, rng) for _ in range(n)]


def test_half_of_the_boxes_are_empty():
    empty = np.mean([b.sum() == 0 for b in boxes()])
    assert empty == pytest.approx(0.5, abs=0.03)


def test_box_geometry():
    size = 64
    areas, ratios = [], []
    for b in boxes(size=size):
        if not b.any():
            continue
        ys, xs = np.nonzero(b)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert b.sum() == h * w  # one solid axis-aligned rectangle, fully inside the crop
        areas.append(h * w / size ** 2)
        ratios.append(h / w)
    areas, ratios = np.array(areas), np.array(ratios)
    assert areas.max() <= 0.4 and areas.min() >= 0.005  # U(0.02, 0.4)·S², truncated to whole pixels
    # the mean of U(0.02, 0.4) is 0.21; int() truncation of both sides loses a little
    assert 0.17 < areas.mean() < 0.21
    assert ratios.min() > 0.25 and ratios.max() < 3.8  # r ~ U(0.3, 1/0.3) up to rounding


def test_sampler_is_deterministic_given_the_rng():
    assert all((a == b).all() for a, b in zip(boxes(50, seed=3), boxes(50, seed=3)))


def test_strong_colour_keeps_shape_and_dtype():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    outs = [strong_colour(img, rng) for _ in range(20)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert sum(not np.array_equal(o, img) for o in outs) >= 15  # p(no change at all) = 0.2·0.8·0.5 = 0.08
