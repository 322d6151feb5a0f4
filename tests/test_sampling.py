"""Epoch sampling as the official loaders do it (docs/methods.md §1.2): each stream's whole list is shuffled every
epoch, a longer list is not cut before shuffling, and iterations per epoch follow DistributedSampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import small_config
from layouts import build, write_list
from torch.utils.data import DistributedSampler

from semiseg.data.datasets import read_split
from semiseg.data.sampling import (
    MAX_AUTO_WORKERS,
    leave_stop_signals_to_trainer,
    EpochSampler,
    build_data,
    iters_per_epoch,
    loader_workers,
    stream_list,
    worker_kwargs,
)
from semiseg.methods import METHODS


def epoch(sampler: EpochSampler, e: int) -> list[int]:
    sampler.set_epoch(e)
    return [index for index, _ in sampler]


@pytest.mark.parametrize("n, world, batch", [(1487, 4, 2), (10, 3, 2), (7, 2, 1), (100, 8, 4), (3, 4, 1)])
def test_iterations_and_shards_follow_the_distributed_sampler(n, world, batch):
    items = np.arange(n)
    official = [list(DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=True)) for r in range(world)]
    ours = [epoch(EpochSampler(items, seed=0, stream=1, rank=r, world=world), 0) for r in range(world)]
    assert [len(o) for o in ours] == [len(o) for o in official] == [math.ceil(n / world)] * world
    assert iters_per_epoch(n, batch, world) == len(official[0]) // batch
    # every entry once, plus the first ones of the permutation again as padding
    flat = [ours[r][i] for i in range(len(ours[0])) for r in range(world)]
    assert sorted(flat[:n]) == list(range(n)) and flat[n:] == flat[:len(flat) - n]


def test_the_official_counts_differ_from_a_flat_division():
    # V1 Cityscapes 1_2 on 4 GPUs x 2: 1487 unlabeled images give 186 iterations, not 1487 // 8 = 185
    assert iters_per_epoch(1487, 2, 4) == 186 and 1487 // 8 == 185


def test_a_longer_list_is_shuffled_whole_every_epoch():
    """An OOD list of 10 beside an epoch of 4 unlabeled samples: each epoch permutes all 10, and the 4
    positions an epoch consumes reach every entry over the epochs (before: entries 4..9 never)."""
    sampler = EpochSampler(stream_list(10, 4, truncate=False), seed=3, stream=3)
    used = set()
    for e in range(12):
        order = epoch(sampler, e)
        assert sorted(order) == list(range(10))
        used |= set(order[:4])
    assert used == set(range(10))


def test_lists_are_repeated_to_the_epoch_and_cut_only_where_the_official_code_cuts():
    assert np.bincount(stream_list(3, 8, truncate=False)).tolist() == [3, 3, 2]
    assert stream_list(5, 4, truncate=False).tolist() == [0, 1, 2, 3, 4]  # V2: kept whole
    assert stream_list(5, 4, truncate=True).tolist() == [0, 1, 2, 3]  # V1: ids[:nsample]


def test_sample_seeds_of_an_unchanged_list_are_kept():
    """A list as long as the epoch gives the same (index, seed) pairs as before: the common case is unchanged."""
    sampler = EpochSampler(np.arange(6), seed=5, stream=1)
    rng = np.random.default_rng([5, 1, 2])
    expected_order = rng.permutation(np.arange(6)).tolist()
    expected_seeds = np.random.default_rng([5, 1, 2, 1]).integers(0, 2**63 - 1, 6).tolist()
    sampler.set_epoch(2)
    assert list(sampler) == list(zip(expected_order, expected_seeds))
    sampler.set_epoch(2, start=4)
    assert list(sampler) == list(zip(expected_order, expected_seeds))[4:] and len(sampler) == 2


@pytest.fixture
def longer_labeled(tmp_path):
    """A folder dataset whose labeled list (5) is longer than its unlabeled list (3), as Cityscapes 1_2."""
    root = build("folder", tmp_path / "f")
    train = read_split(root / "splits" / "1_16" / "labeled.txt") + read_split(root / "splits" / "1_16" /
                                                                               "unlabeled.txt")
    write_list(root / "splits" / "1_2" / "labeled.txt", train[:5])
    write_list(root / "splits" / "1_2" / "unlabeled.txt", train[5:])
    return lambda method, *o: small_config(tmp_path, root, f"method={method}", "data.dataset=folder",
                                           "data.split='1_2'", "train.batch_size=1", "train.max_iters_per_epoch=0",
                                           *o)


def test_v2_samples_every_labeled_image_v1_cuts_the_list(longer_labeled):
    v2 = build_data(longer_labeled("unimatch_v2"), METHODS.get("unimatch_v2").streams)
    v1 = build_data(longer_labeled("unimatch"), METHODS.get("unimatch").streams)
    assert v2.iters_per_epoch == v1.iters_per_epoch == 3
    assert len(v1.loaders["labeled"].sampler) == 3 and len(v2.loaders["labeled"].sampler) == 5
    used = set()
    for e in range(10):
        v2.set_epoch(e)
        used |= {index for index, _ in list(v2.loaders["labeled"].sampler)[:v2.iters_per_epoch]}
    assert used == set(range(5))


def test_iterations_per_process_under_data_parallel(longer_labeled):
    """3 unlabeled images on 2 processes at batch 1: DistributedSampler pads to 2 per process, so 2 iterations."""
    cfg = longer_labeled("unimatch")
    streams = METHODS.get("unimatch").streams
    shards = [build_data(cfg, streams, rank=r, world=2) for r in range(2)]
    assert [d.iters_per_epoch for d in shards] == [2, 2]
    batches = [next(iter(d.loaders["unlabeled"])) for d in shards]
    assert all(b["w"].dtype == torch.uint8 for b in batches)


def test_auto_workers_share_the_cpus():
    assert loader_workers(-1, 3, 1, cpus=16) == 5  # 16 CPUs over 3 loaders
    assert loader_workers(-1, 1, 1, cpus=16) == MAX_AUTO_WORKERS
    assert loader_workers(-1, 4, 2, cpus=16) == 2  # two processes on this machine
    assert loader_workers(3, 4, 2, cpus=16) == 3  # an explicit count is kept
    assert loader_workers(-1, 3, 1, cpus=2) == 0  # fewer CPUs than loaders: load in the training process
    assert worker_kwargs(0) == {"num_workers": 0}
    assert worker_kwargs(1) == {"num_workers": 1, "persistent_workers": True, "prefetch_factor": 4,
                                "worker_init_fn": leave_stop_signals_to_trainer}
    assert worker_kwargs(8)["prefetch_factor"] == 2
