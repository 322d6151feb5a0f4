"""Seeded epoch samplers and the training/validation loaders of docs/methods.md §1.2 ("Epoch length and loaders").

A sampler yields ``(index, sample_seed)`` pairs. Both depend only on (run seed, stream, epoch), so an
epoch replays identically after a resume, whatever the number of workers.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from semiseg.config import RunConfig
from semiseg.data.datasets import SegDataset, load_split, open_dataset, unlabeled_entries
from semiseg.data.device import IMAGENET, Norm
from semiseg.errors import DataError
from semiseg.protocol import EvalProtocol, resolve_protocol

STREAM_IDS = {"labeled": 0, "unlabeled": 1, "mix": 2, "ood": 3}
#: most worker processes a loader gets by default (beyond it, decoding rarely limits a GPU step)
MAX_AUTO_WORKERS = 8


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def loader_workers(requested: int, loaders: int, processes: int, cpus: int) -> int:
    """Worker processes per loader: ``requested``, or for -1 (auto) the ``cpus`` shared out over the loaders of
    the ``processes`` on this machine, at most :data:`MAX_AUTO_WORKERS`; 0 (load in the training process)
    when there are fewer CPUs than loaders."""
    if requested >= 0:
        return requested
    return min(MAX_AUTO_WORKERS, cpus // (loaders * processes))


def worker_kwargs(workers: int) -> dict:
    """DataLoader worker settings: persistent workers, at least 4 batches in flight per loader, and stop
    signals left to the training process."""
    if workers == 0:
        return {"num_workers": 0}
    return {"num_workers": workers, "persistent_workers": True, "prefetch_factor": max(2, math.ceil(4 / workers)),
            "worker_init_fn": leave_stop_signals_to_trainer}


def stream_list(num_items: int, target: int, truncate: bool) -> np.ndarray:
    """The index list an official dataset object holds (built once, before any shuffling): the ``num_items``
    entries repeated ``ceil(target / num_items)`` times and cut to ``target`` when they are fewer; with
    ``truncate`` a longer list is cut to ``target`` too (UniMatch V1's ``ids[:nsample]``), else kept whole."""
    if num_items >= target and not truncate:
        return np.arange(num_items)
    return np.tile(np.arange(num_items), math.ceil(target / num_items))[:target]


def iters_per_epoch(length: int, batch_size: int, world: int) -> int:
    """Batches per process of an epoch over ``length`` entries: a ``DistributedSampler`` pads every process
    to ``ceil(length / world)`` entries and the loader drops the last partial batch."""
    return math.ceil(length / world) // batch_size


class EpochSampler(Sampler):
    """Shuffles the whole list ``items`` (indices into the dataset) each epoch; yields (index, seed) pairs.

    As a ``DistributedSampler`` with ``shuffle=True``: the epoch's permutation is padded by wrapping to a
    multiple of ``world`` and process ``rank`` takes every ``world``-th entry from ``rank``, so each process
    gets ``ceil(len(items) / world)`` entries. The permutation and the per-position sample seeds depend only
    on (run seed, stream, epoch). ``order_stream`` lets two samplers share the index order while drawing
    different augmentations (the same-index Style-A mix quirk). ``start`` skips the process's first entries
    of the epoch (a mid-epoch resume).
    """

    def __init__(self, items: np.ndarray, seed: int, stream: int, order_stream: int | None = None,
                 rank: int = 0, world: int = 1) -> None:
        self.items, self.seed, self.rank, self.world = np.asarray(items), seed, rank, world
        self.stream = stream
        self.order_stream = stream if order_stream is None else order_stream
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return math.ceil(len(self.items) / self.world) - self.start

    def __iter__(self):
        n = len(self.items)
        total = math.ceil(n / self.world) * self.world
        order = np.random.default_rng([self.seed, self.order_stream, self.epoch]).permutation(self.items)
        order = np.resize(order, total)  # wraps around: the DistributedSampler's padding
        seeds = np.random.default_rng([self.seed, self.stream, self.epoch, 1]).integers(0, 2**63 - 1, total)
        mine = slice(self.rank, total, self.world)
        return iter(zip(order[mine][self.start:].tolist(), seeds[mine][self.start:].tolist()))


@dataclass
class TrainData:
    """The loaders of one run plus what the trainer needs to know about them."""

    loaders: dict[str, DataLoader]
    val_loader: DataLoader
    iters_per_epoch: int
    num_classes: int
    class_names: tuple[str, ...]
    n_labeled: int
    n_unlabeled: int
    root: Path
    protocol: EvalProtocol
    norm: Norm = IMAGENET

    def set_epoch(self, epoch: int, start_iter: int = 0) -> None:
        """Select the epoch's sample order, starting after ``start_iter`` batches (a mid-epoch resume)."""
        for loader in self.loaders.values():
            loader.sampler.set_epoch(epoch, start_iter * loader.batch_size)


def leave_stop_signals_to_trainer(worker_id: int) -> None:
    """Loader workers leave the stop signals to the training process: a SIGTERM to the whole process group
    (``scancel``, preemption, ``kill -- -PGID``) then stops training gracefully, with a checkpoint, instead of
    killing a worker under it. A SIGTERM from the training process itself (the loader shutting its workers
    down) still ends the worker: a thread waits for SIGTERM and exits only when the parent sent it."""
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    parent = os.getppid()

    def wait_for_parent() -> None:
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid == parent:
                os._exit(0)

    threading.Thread(target=wait_for_parent, daemon=True, name="sigterm-from-parent").start()


def warn_overlaps(split: str, labeled: list[tuple[str, str]], unlabeled: list[tuple[str, str]]) -> None:
    """Warn (and go on) about duplicate labeled entries and labeled images also in the unlabeled list: the
    official blended Pascal splits do overlap, so it is legitimate, but worth knowing."""
    images = [image for image, _ in labeled]
    duplicates = len(images) - len(set(images))
    if duplicates:
        print(f"warning: the labeled list of split '{split}' has {duplicates} duplicate entr"
              f"{'y' if duplicates == 1 else 'ies'} (they are sampled as often as listed)", file=sys.stderr)
    shared = len(set(images) & {image for image, _ in unlabeled})
    if shared:
        print(f"warning: {shared} of the {len(set(images))} labeled images of split '{split}' are also in its "
              f"unlabeled list (as in the official blended Pascal splits); training goes on", file=sys.stderr)


def build_data(cfg: RunConfig, streams: tuple[str, ...], rank: int = 0, world: int = 1) -> TrainData:
    """Build the loaders for the method's ``streams`` (labeled, unlabeled, mix, ood); data-parallel process
    ``rank`` of ``world`` gets its share of every epoch and of the validation set.

    Every epoch shuffles each stream's whole list and ends with the shortest loader, as the official ``zip``
    does. The ``ood`` stream (SemiOVS) is repeated to the unlabeled epoch length when it is shorter, so a
    short OOD list is cycled instead of shortening the epoch (the official ``zip`` quirk of docs/methods.md §2.7); a
    longer one is used whole.
    """
    spec, root = open_dataset(cfg.data.dataset, cfg.data.root)
    labeled = load_split(root, spec.name, cfg.data.split, "labeled")
    semi = "unlabeled" in streams
    if semi:
        unlabeled = unlabeled_entries(root, spec, cfg.data.split, labeled)
    else:
        unlabeled = load_split(root, spec.name, cfg.data.split, "unlabeled", required=False)
    if semi and not unlabeled:
        raise DataError(f"split '{cfg.data.split}' of '{spec.name}' has no unlabeled images (no unlabeled list, "
                        f"and no train list or folder to derive 'train minus labeled' from); method "
                        f"'{cfg.method}' needs them")
    val = load_split(root, spec.name, cfg.data.split, "val")
    if rank == 0:
        warn_overlaps(cfg.data.split, labeled, unlabeled if semi else [])
    if not labeled:
        raise DataError(f"split '{cfg.data.split}' of '{spec.name}' has an empty labeled list")

    # the index list of each stream, as the official dataset objects hold them (docs/methods.md §1.2, epoch length)
    if semi:
        # V1-family datasets (Style-A CutMix, a mix stream) cut the labeled list to N_u even when it is longer;
        # UniMatch V2 repeats it only when it is shorter
        lists = {"labeled": stream_list(len(labeled), len(unlabeled), truncate="mix" in streams),
                 "unlabeled": np.arange(len(unlabeled)), "mix": np.arange(len(unlabeled))}
    else:
        lists = {"labeled": stream_list(len(labeled), cfg.data.sup_nsample, truncate=False)}
    if "ood" in streams:
        from semiseg.data.ood import ood_source

        ood_root, ood_entries = ood_source(cfg, root)
        lists["ood"] = stream_list(len(ood_entries), len(unlabeled), truncate=False)
    lists = {name: items for name, items in lists.items() if name in streams}
    bs = cfg.train.batch_size
    # the loop stops with the shortest loader (the official zip)
    iters = min(iters_per_epoch(len(items), bs, world) for items in lists.values())
    if cfg.train.max_iters_per_epoch:
        iters = min(iters, cfg.train.max_iters_per_epoch)
    if iters == 0:
        raise DataError(f"split '{cfg.data.split}' gives {min(map(len, lists.values()))} samples per epoch, "
                        f"fewer than one batch of train.batch_size={bs}" + (f" per process ({world})" if world > 1
                                                                           else ""))

    cuda = torch.cuda.is_available() and cfg.runtime.device != "cpu"
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))  # processes on this machine (torchrun sets it)
    workers = loader_workers(cfg.runtime.num_workers, len(lists), local, cpu_count())
    # a private generator: the worker base seed must not consume the global RNG, which a resume restores
    kw = dict(batch_size=bs, drop_last=True, pin_memory=cuda, generator=torch.Generator().manual_seed(cfg.seed),
              **worker_kwargs(workers))
    crop, C, scales = cfg.data.crop_size, spec.codec(cfg.data.mask_encoding), cfg.data.scale_range
    # on a GPU the strong views' colour augmentation runs there (semiseg.data.device)
    norm = {"mean": spec.mean, "std": spec.std}
    train_kw = dict(crop_size=crop, scale_range=scales, colour_on_device=cuda, **norm)
    shard = dict(rank=rank, world=world)

    def sampler(name: str, order: str | None = None) -> EpochSampler:
        return EpochSampler(lists[name], cfg.seed, STREAM_IDS[name], order and STREAM_IDS[order], **shard)

    loaders = {"labeled": DataLoader(SegDataset(root, labeled, "train_l", C, **train_kw), sampler=sampler("labeled"),
                                     **kw)}
    if semi:
        u_set = SegDataset(root, unlabeled, "train_u", C, **train_kw)
        loaders["unlabeled"] = DataLoader(u_set, sampler=sampler("unlabeled"), **kw)
        if "mix" in streams:
            order = "unlabeled" if cfg.data.mix_same_index else "mix"
            loaders["mix"] = DataLoader(u_set, sampler=sampler("mix", order), **kw)
    if "ood" in streams:
        ood_set = SegDataset(ood_root, ood_entries, "train_u_ood", spec.num_classes, **train_kw)
        loaders["ood"] = DataLoader(ood_set, sampler=sampler("ood"), **kw)
    val_loader = DataLoader(SegDataset(root, val[rank::world], "val", C, **norm), batch_size=1, shuffle=False,
                            pin_memory=cuda, generator=torch.Generator().manual_seed(cfg.seed),
                            **worker_kwargs(min(workers, 2)))
    protocol = resolve_protocol(cfg.eval, spec.eval_mode, crop)
    return TrainData(loaders, val_loader, iters, spec.num_classes, spec.classes, len(labeled), len(unlabeled), root,
                     protocol, (tuple(spec.mean), tuple(spec.std)))
