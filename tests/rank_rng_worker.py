"""One rank of the exact-resume test: ``python tests/rank_rng_worker.py CONFIG.yaml OUT.pt``.

Trains the run of CONFIG through the engine (resuming from its checkpoint, if any) with one extra hook that
draws ``rank + 1`` numbers from the global generators (and the rank's CUDA generator) after every step, so
the ranks' random streams differ (as each GPU's own generator does); rank 0 writes the final weights to OUT.pt.
Used by tests/test_rank_resume.py (CPU, gloo) and the GPU check's ``resume/2rank`` row (tests/gpu/check.py).
"""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

from semiseg import distributed
from semiseg.config import load_config
from semiseg.hooks import Hook
from semiseg.runtime import build_trainer


class RankDraws(Hook):
    priority = 15  # before the checkpoint of the step (50): the saved states include the step's draws

    def after_step(self, trainer, out) -> None:
        n = int(os.environ.get("RANK", "0")) + 1
        torch.rand(n), np.random.rand(n), [random.random() for _ in range(n)]
        if trainer.device.type == "cuda":
            torch.rand(n, device=trainer.device)


def main(config: str, out: str) -> None:
    trainer = build_trainer(load_config(config), hooks=[RankDraws()])
    trainer.train()
    if os.environ.get("RANK", "0") == "0":
        torch.save(distributed.unwrap(trainer.model).state_dict(), out)
    distributed.teardown()


if __name__ == "__main__":
    main(*sys.argv[1:])
