"""The OpenCV hue rotation agrees with torchvision's adjust_hue (the official ColorJitter semantics,
docs/methods.md §1.2)."""

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from semiseg.data.transforms import adjust_hue


@pytest.mark.parametrize("factor", [-0.25, -0.07, 0.0, 0.13, 0.25])
def test_adjust_hue_matches_torchvision_within_one_level(factor):
    rng = np.random.default_rng(3)
    img = torch.from_numpy(rng.integers(0, 256, (3, 64, 80), dtype=np.uint8))
    img[:, :8] = img[:1, :8]  # grey pixels: hue has no effect
    ours, ref = adjust_hue(img, factor), TF.adjust_hue(img, factor)
    diff = (ours.int() - ref.int()).abs()
    assert ours.dtype == torch.uint8 and ours.shape == img.shape
    assert diff.max() <= 1 and diff.float().mean() < 0.15
    assert torch.equal(ours[:, :8], img[:, :8])
