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
    """At scale 1 (where the rescale fix changes nothing) every tensor equals the previous pipeline's, bit for bit,
    except the strong views, whose colour is now PIL's (issue 26): those equal the worker's PIL path on both
    paths (made by PIL in the worker, or by Pillow's arithmetic in torch in ``to_device``)."""
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
    worker = SegDataset(root, entries, mode, spec.codec(), **kw)
    pil = to_device(batch_of(worker, items), CPU, worker.norm)
    for key in want:
        ref = pil[key] if key in ("s1", "s2") else want[key]
        assert got[key].dtype == ref.dtype and torch.equal(got[key], ref), key


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


def test_colour_draws_are_those_of_applying_them():
    """Drawing the parameters consumes the generator exactly as the strong view does (resume stays exact)."""
    a, b = np.random.default_rng(4), np.random.default_rng(4)
    img = np.random.default_rng(5).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    for _ in range(50):
        params = T.draw_colour(a)
        T.strong_colour(img, b)
        assert params.shape == (T.COLOUR_PARAMS,)
    assert a.random() == b.random()
