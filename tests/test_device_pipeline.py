"""Workers hand over uint8; ``to_device`` gives methods exactly the tensors the worker-side pipeline gave
before (normalised float32, int64 masks, bool boxes), with strong views made in the worker or on the device."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from layouts import build
from torch.utils.data import DataLoader, default_collate

from semiseg.data import transforms as T
from semiseg.data.datasets import SegDataset, open_dataset, read_split
from semiseg.data.device import normalize, to_device

sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
from legacy_pipeline import LegacySegDataset

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    spec, root = open_dataset("folder", str(build("folder", tmp_path_factory.mktemp("f") / "f")))
    return spec, root, read_split(root / "splits" / "1_16" / "labeled.txt")


def batch_of(dataset, items):
    return default_collate([dataset[i] for i in items])


@pytest.mark.parametrize("mode", ["train_l", "train_u", "train_u_ood", "val"])
@pytest.mark.parametrize("colour_on_device", [False, True])
def test_same_tensors_as_the_worker_side_pipeline(folder, mode, colour_on_device):
    """At scale 1 (where the rescale fix changes nothing) every tensor equals the previous pipeline's, bit for bit."""
    spec, root, entries = folder
    kw = {"crop_size": 64, "scale_range": (1.0, 1.0), "mean": spec.mean, "std": spec.std}
    new = SegDataset(root, entries, mode, spec.codec(), colour_on_device=colour_on_device, **kw)
    old = LegacySegDataset(root, entries, mode, spec.codec(), **kw)
    items = [0, 1, 2] if mode == "val" else [(i % len(entries), 1000 + i) for i in range(6)]
    raw = batch_of(new, items)
    assert all(v.dtype in (torch.uint8, torch.float64) for k, v in raw.items() if k != "index")
    assert ("c1" in raw) == (colour_on_device and mode in ("train_u", "train_u_ood"))
    got, want = to_device(raw, CPU, new.norm), batch_of(old, items)
    assert set(got) == set(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key


def test_normalisation_is_bit_identical_to_the_numpy_one():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 17, 23, 3), dtype=np.uint8)
    stats = ((0.5, 0.25, 0.125), (0.2, 0.3, 0.7))
    ours = normalize(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous(), stats)
    ref = torch.stack([T.normalize(i, np.float32(stats[0]), np.float32(stats[1])) for i in imgs])
    assert torch.equal(ours, ref)


def test_loader_batches_are_uint8_and_smaller(folder):
    spec, root, entries = folder
    u = SegDataset(root, entries, "train_u", spec.codec(), crop_size=64, mean=spec.mean, std=spec.std)
    batch = next(iter(DataLoader(u, batch_size=2, sampler=[(0, 1), (1, 2)])))
    assert batch["w"].dtype == batch["s1"].dtype == batch["ign"].dtype == batch["box1"].dtype == torch.uint8
    moved = to_device(batch, CPU, u.norm)
    assert (moved["w"].dtype, moved["ign"].dtype, moved["box1"].dtype) == (torch.float32, torch.int64, torch.bool)
    size = sum(v.numel() * v.element_size() for v in batch.values())
    assert size * 3.5 < sum(v.numel() * v.element_size() for v in moved.values())  # float32 images, int64 ign


@pytest.mark.parametrize("sigma", [0.1, 0.37, 0.9, 1.5, 2.0])
def test_the_torch_blur_is_within_one_level_of_opencv(sigma):
    """Off the CPU the blur is torchvision's with OpenCV's kernel size (run here on a CPU tensor)."""
    rng = np.random.default_rng(2)
    t = torch.from_numpy(rng.integers(0, 256, (3, 40, 52), dtype=np.uint8))
    diff = (T.gaussian_blur(t, sigma, opencv=False).int() - T.gaussian_blur(t, sigma).int()).abs()
    assert diff.max() <= 1 and T.blur_kernel_size(sigma) % 2 == 1


def test_the_torch_colour_path_is_within_rounding_of_the_opencv_one():
    """What CUDA runs make (hue and blur in torch), run here on CPU tensors: rounding-level differences only
    (one level from the hue or blur, grown by later jitter factors of up to 1.5; on pure noise, the worst
    case, OpenCV's fixed-point blur rounds a quarter of the pixels the other way at small sigma)."""
    rng = np.random.default_rng(6)
    img = torch.from_numpy(rng.integers(0, 256, (3, 48, 40), dtype=np.uint8))
    diffs = []
    for _ in range(40):
        params = T.draw_colour(rng)
        diff = (T.apply_colour(img, params, opencv=False).int() - T.apply_colour(img, params).int()).abs()
        diffs.append(diff.float().mean())
        assert diff.max() <= 3
    assert max(diffs) < 0.6


def test_colour_draws_are_those_of_applying_them():
    """Drawing the parameters consumes the generator exactly as the strong view does (resume stays exact)."""
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    img = np.random.default_rng(5).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    for _ in range(50):
        params = T.draw_colour(a)
        T.strong_colour(img, b)
        assert params.shape == (T.COLOUR_PARAMS,)
    assert a.random() == b.random()
