"""Data-parallel training from the standard torch.distributed environment variables.

``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are set by whoever starts
the processes (the SLURM backend, torchrun, or by hand); without them a run is a single process. NCCL on
GPUs, gloo on CPU. Every rank uses the same seed (as CorrMatch does), so a resume restores every rank's
random state exactly from rank 0's checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from semiseg.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env(gpus: int) -> World:
    """This process's place in the run; ``gpus`` (train.gpus) must match ``WORLD_SIZE``."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size != gpus:
        raise ConfigError(f"train.gpus is {gpus} but this process runs in a world of {size} (WORLD_SIZE); a run "
                          f"on N GPUs needs N processes, e.g. --backend slurm or torchrun --nproc-per-node {gpus}")
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def setup(world: World, device: torch.device) -> None:
    """Join the process group (once) when the run has more than one process."""
    if world.size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank,
                                world_size=world.size)


def wrap(model: nn.Module, world: World, device: torch.device, sync_bn: bool) -> nn.Module:
    """DDP-wrap ``model`` (SyncBatchNorm first when asked and on GPU); unchanged for a single process."""
    if world.size == 1:
        return model
    if sync_bn and device.type == "cuda":  # torch's SyncBatchNorm runs on GPUs only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                               broadcast_buffers=False)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (a graceful stop must happen at the same step)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``tensor`` over the ranks (a sharded evaluation's confusion matrix)."""
    if dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def lost_peer(exc: BaseException) -> bool:
    """True when a collective failed because another rank died (gloo: its connection closed; NCCL: a
    backend error): the run is interrupted, not broken, and resumes from its checkpoint."""
    text = str(exc)
    return isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError) and any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
                                  "gloo/transport")))
