"""Data-parallel training from the standard torch.distributed environment variables.

``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are set by whoever starts
the processes (the SLURM backend, torchrun, or by hand); without them a run is a single process. NCCL on
GPUs, gloo on CPU. Every rank uses the same seed (as CorrMatch does), but the ranks' random streams part
ways (each rank drives its own GPU's generator, and a method may draw per sample): rank 0's checkpoint
holds every rank's own random states, gathered by :func:`gather_objects`, and each rank restores its own
(:func:`semiseg.checkpoint.rank_rng_state`). The loaders' positions are per rank by construction: a rank's
sample order and sample seeds follow from (seed, stream, epoch, rank) and the checkpoint's iteration.

**Every model pass goes through the wrapper.** DDP arms its gradient all-reduce in the *wrapper's* forward:
a step whose grad-carrying passes all bypass the wrapper is not synchronised at all, and a single bypassing
pass is right only by grace of the others (tests/test_ddp_methods.py checks both). So a method calls
``self.model(x, **mode)`` for every pass, and a model offers its alternative passes as keyword arguments
of ``forward`` (DeepLabV3+: ``need_fp`` for UniMatch's feature perturbation, ``corr`` for CorrMatch's
correlation branch; DPT: ``comp_drop`` for Complementary Dropout), never as other methods. Capability
checks (``isinstance``, attributes) look at :func:`unwrap` of the model. Parameters that a model never
uses in any pass are frozen (``requires_grad=False``), so DDP runs without ``find_unused_parameters``.

**One model on every rank.** Parameters agree because gradients are all-reduced. BatchNorm running
statistics agree under SyncBatchNorm (GPUs); without it (gloo on CPU, or ``train.sync_bn=false``) they are
averaged over the ranks after every optimizer step by :func:`average_bn_buffers` (for the running means this
equals what SyncBatchNorm gives; running variances become the mean of the per-rank variances). State
derived from the model (V2's EMA teacher, PrevMatch's snapshots) and from gathered data (CorrMatch's τ,
see :func:`all_gather_cat`) is therefore identical on every rank as well.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel as DDP

from semiseg.errors import ConfigError

#: torch 2.13 renamed ``broadcast_buffers`` (now deprecated) to ``forward_sync_buffers``; older torch (the GPU
#: machines' 2.11) only knows the old name.
_BUFFER_SYNC_ARG = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters \
    else "broadcast_buffers"


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


#: Overrides the process group's backend (default NCCL on GPUs, gloo on CPU), e.g. ``gloo`` for several
#: ranks sharing one GPU, which NCCL refuses (the GPU check's exact-resume row).
BACKEND_ENV = "SEMISEG_DIST_BACKEND"


def setup(world: World, device: torch.device) -> None:
    """Join the process group (once) when the run has more than one process."""
    if world.size > 1 and not dist.is_initialized():
        backend = os.environ.get(BACKEND_ENV) or ("nccl" if device.type == "cuda" else "gloo")
        dist.init_process_group(backend, rank=world.rank, world_size=world.size)


def wrap(model: nn.Module, device: torch.device, sync_bn: bool) -> nn.Module:
    """DDP-wrap ``model`` when this process is in a process group (SyncBatchNorm first when asked and on GPU,
    as the official code); unchanged otherwise. A group of one process (the GPU check) also gets the wrapper."""
    if not dist.is_initialized():
        return model
    if sync_bn and device.type == "cuda":  # torch's SyncBatchNorm runs on GPUs only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    sync_buffers = {_BUFFER_SYNC_ARG: False}
    # - no buffer broadcast before each forward (as every official repo: broadcast_buffers=False): it would
    #   cost a collective per pass and overwrite the other ranks' BN statistics with rank 0's; buffers stay
    #   equal by SyncBatchNorm or average_bn_buffers instead.
    # - gradients as views into the all-reduce buckets: no copy between them and one gradient-sized buffer
    #   less; the trainer keeps gradients allocated (zero_grad(set_to_none=False)) so the views persist and
    #   accumulated micro-batches (no_sync) sum in place.
    # - find_unused_parameters stays False: every trainable parameter takes part in every method's graph.
    return DDP(model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True,
               find_unused_parameters=False, **sync_buffers)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside the DDP wrapper and ``torch.compile``'s module (``speed.compile``), if any."""
    model = model.module if isinstance(model, DDP) else model
    return getattr(model, "_orig_mod", model)


def _unsynced_bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    return [buf for m in model.modules() if isinstance(m, _BatchNorm) and not isinstance(m, nn.SyncBatchNorm)
            for buf in (m.running_mean, m.running_var) if buf is not None]


@torch.no_grad()
def average_bn_buffers(model: nn.Module) -> None:
    """Average the running statistics of BatchNorm layers that are not SyncBatchNorm over the ranks
    (one all-reduce); nothing for a single process or a model without such layers."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    buffers = _unsynced_bn_buffers(model)
    if not buffers:
        return
    flat = torch.cat([b.flatten().float() for b in buffers])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    for buf, value in zip(buffers, flat.split([b.numel() for b in buffers])):
        buf.copy_(value.view_as(buf))


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` of every rank concatenated along dim 0, in rank order (the tensor itself for one process).

    Every rank must pass the same shape; the result carries no gradient.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor.detach()
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts)


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (a graceful stop must happen at the same step)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")  # gloo: CPU
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def rank() -> int:
    """This process's rank in the process group (0 without one)."""
    return dist.get_rank() if dist.is_initialized() else 0


def gather_objects(obj) -> list:
    """``obj`` of every rank, in rank order, on every rank (``[obj]`` for a single process). Every rank calls it."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


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
