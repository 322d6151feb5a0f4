"""The model and backend side of the speed options (``speed.*``, issue 16); the loop side is in the trainer.

Every option is off by default, so a paper recipe runs as the official code runs it (torch's defaults).
"""

from __future__ import annotations

import torch
from torch import nn

from semiseg.config import RunConfig

#: the ``torch.compile`` backend of ``speed.compile`` (tests on a small CPU may swap in "eager")
COMPILE_BACKEND = "inductor"


def configure_backends(cfg: RunConfig, device: torch.device) -> None:
    """``speed.tf32`` on CUDA: TF32 tensor cores for fp32 matmuls (cuDNN convolutions: torch's default, TF32).

    Off means torch's defaults, which the official code runs with (it never sets these flags): fp32
    matmuls, and cuDNN convolutions that may use TF32 (``cudnn.allow_tf32`` is True by default). So off is
    faithful, and on adds TF32 matmuls (``nn.Linear``: attention and MLPs of a ViT encoder). Both flags are
    set either way, so an earlier run in the same process does not leak into this one. CPU: nothing.
    """
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = cfg.speed.tf32
    torch.backends.cudnn.allow_tf32 = True  # torch's default, on or off


def prepare_model(model: nn.Module, cfg: RunConfig) -> nn.Module:
    """The model with ``speed.channels_last`` (NHWC weights) and ``speed.compile`` applied; as it is when off.

    Call it before the DDP wrap: DDP then wraps the compiled module (one compiled graph for the forward and
    one for the backward; gradients are all-reduced after the backward graph rather than overlapped with it).
    The compiled module takes the same arguments (``need_fp``, ``corr``, ``comp_drop``, ...: each variant is
    compiled on first use, with static shapes: a training's few batch shapes each get a graph, and V2's
    random Complementary Dropout masks need concrete sizes) and shares the parameters;
    :func:`semiseg.distributed.unwrap` strips it, so checkpoints, weights files, EMA teachers, snapshots and
    evaluation see the plain module and its keys.
    """
    if cfg.speed.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.speed.compile:
        model = torch.compile(model, backend=COMPILE_BACKEND, dynamic=False)
    return model
