"""Seeded epoch samplers and the training/validation loaders of spec §1.2 ("Epoch length and loaders").

A sampler yields ``(index, sample_seed)`` pairs. Both depend only on (run seed, stream, epoch), so an
epoch replays identically after a resume, whatever the number of workers.
"""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from semiseg.config import RunConfig
from semiseg.data.datasets import SegDataset, load_split, open_dataset, unlabeled_entries
from semiseg.errors import DataError
from semiseg.evaluate import EvalProtocol, resolve_protocol

STREAM_IDS = {"labeled": 0, "unlabeled": 1, "mix": 2, "ood": 3}


class EpochSampler(Sampler):
    """Shuffles ``num_items`` repeated to ``length`` entries each epoch; yields (index, seed) pairs.

    ``order_stream`` lets two samplers share the index order while drawing different augmentations
    (the same-index Style-A mix quirk). ``start`` skips the epoch's first entries (a mid-epoch resume).
    Data-parallel process ``rank`` of ``world`` takes every ``world``-th entry of the epoch, from ``rank``.
    """

    def __init__(self, num_items: int, length: int, seed: int, stream: int, order_stream: int | None = None,
                 rank: int = 0, world: int = 1) -> None:
        self.num_items, self.length, self.seed, self.rank, self.world = num_items, length, seed, rank, world
        self.stream = stream
        self.order_stream = stream if order_stream is None else order_stream
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.length // self.world - self.start

    def __iter__(self):
        repeated = np.tile(np.arange(self.num_items), math.ceil(self.length / self.num_items))[: self.length]
        order = np.random.default_rng([self.seed, self.order_stream, self.epoch]).permutation(repeated)
        seeds = np.random.default_rng([self.seed, self.stream, self.epoch, 1]).integers(0, 2**63 - 1, self.length)
        mine = slice(self.rank, self.length // self.world * self.world, self.world)
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

    def set_epoch(self, epoch: int, start_iter: int = 0) -> None:
        """Select the epoch's sample order, starting after ``start_iter`` batches (a mid-epoch resume)."""
        for loader in self.loaders.values():
            loader.sampler.set_epoch(epoch, start_iter * loader.batch_size)


def leave_stop_signals_to_trainer(worker_id: int) -> None:
    """Loader workers ignore the stop signals: a SIGTERM to the whole process group (``scancel``, preemption,
    ``kill -- -PGID``) then stops training gracefully, with a checkpoint, instead of killing a worker under it."""
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)


def build_data(cfg: RunConfig, streams: tuple[str, ...], rank: int = 0, world: int = 1) -> TrainData:
    """Build the loaders for the method's ``streams`` (labeled, unlabeled, mix, ood); data-parallel process
    ``rank`` of ``world`` gets its share of every epoch and of the validation set.

    The ``ood`` stream (SemiOVS) is repeated to the unlabeled epoch length, so a short OOD list is cycled
    instead of shortening the epoch (the official ``zip`` quirk of spec §2.7).
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
    if not labeled:
        raise DataError(f"split '{cfg.data.split}' of '{spec.name}' has an empty labeled list")

    if semi:
        epoch_len = len(unlabeled)
    else:
        epoch_len = max(len(labeled), cfg.data.sup_nsample)
    bs = cfg.train.batch_size
    iters = epoch_len // (bs * world)
    if cfg.train.max_iters_per_epoch:
        iters = min(iters, cfg.train.max_iters_per_epoch)
    if iters == 0:
        raise DataError(f"split '{cfg.data.split}' gives {epoch_len} samples per epoch, fewer than one batch "
                        f"of train.batch_size={bs}")

    workers = cfg.runtime.num_workers
    # a private generator: the worker base seed must not consume the global RNG, which a resume restores
    kw = dict(batch_size=bs, drop_last=True, num_workers=workers, persistent_workers=workers > 0,
              pin_memory=torch.cuda.is_available(), generator=torch.Generator().manual_seed(cfg.seed),
              worker_init_fn=leave_stop_signals_to_trainer)
    crop, C, scales = cfg.data.crop_size, spec.codec(cfg.data.mask_encoding), cfg.data.scale_range
    norm = {"mean": spec.mean, "std": spec.std}
    shard = dict(rank=rank, world=world)
    loaders = {"labeled": DataLoader(SegDataset(root, labeled, "train_l", C, crop, scales, **norm),
                                     sampler=EpochSampler(len(labeled), epoch_len, cfg.seed, STREAM_IDS["labeled"],
                                                          **shard), **kw)}
    if semi:
        u_set = SegDataset(root, unlabeled, "train_u", C, crop, scales, **norm)
        loaders["unlabeled"] = DataLoader(u_set, sampler=EpochSampler(len(unlabeled), epoch_len, cfg.seed,
                                                                       STREAM_IDS["unlabeled"], **shard), **kw)
        if "mix" in streams:
            order = STREAM_IDS["unlabeled" if cfg.data.mix_same_index else "mix"]
            loaders["mix"] = DataLoader(u_set, sampler=EpochSampler(len(unlabeled), epoch_len, cfg.seed,
                                                                    STREAM_IDS["mix"], order_stream=order, **shard),
                                        **kw)
    if "ood" in streams:
        from semiseg.data.ood import ood_source

        ood_root, ood_entries = ood_source(cfg, root)
        ood_set = SegDataset(ood_root, ood_entries, "train_u_ood", spec.num_classes, crop, scales, **norm)
        loaders["ood"] = DataLoader(ood_set, sampler=EpochSampler(len(ood_entries), epoch_len, cfg.seed,
                                                                  STREAM_IDS["ood"], **shard), **kw)
    val_loader = DataLoader(SegDataset(root, val[rank::world], "val", C, **norm), batch_size=1, shuffle=False,
                            num_workers=min(workers, 1), generator=torch.Generator().manual_seed(cfg.seed),
                            worker_init_fn=leave_stop_signals_to_trainer)
    protocol = resolve_protocol(cfg.eval, spec.eval_mode, crop)
    return TrainData(loaders, val_loader, iters, spec.num_classes, spec.classes, len(labeled), len(unlabeled), root,
                     protocol)
