"""One rank of a data-parallel test run: trains each given run config through the engine and dumps its state.

``python tests/ddp_worker.py OUT NAME=CONFIG.yaml [NAME=CONFIG.yaml ...]`` in each of the processes, with the
torch.distributed variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) set. For each config it builds the
run with :func:`semiseg.runtime.build_trainer`, trains it and writes ``OUT/NAME.rank<R>.pt`` with the model's
initial and final state, the method state (EMA teacher, snapshots, τ), the loss of every step on this rank,
and how many grad-enabled forwards went through the DDP wrapper and through the module it wraps.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from semiseg import distributed
from semiseg.config import load_config
from semiseg.hooks import Hook
from semiseg.runtime import build_trainer


class StepLosses(Hook):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def after_step(self, trainer, out) -> None:
        self.losses.append(float(out.loss.detach()))


def count_grad_forwards(module: torch.nn.Module, counts: dict[str, int], key: str) -> None:
    def hook(mod, args):
        if torch.is_grad_enabled():
            counts[key] += 1

    module.register_forward_pre_hook(hook)


def snapshot(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


def main(out: Path, runs: list[str]) -> None:
    rank = int(os.environ["RANK"])
    for run in runs:
        name, path = run.split("=", 1)
        trainer = build_trainer(load_config(path))
        counts = {"wrapper": 0, "module": 0}
        count_grad_forwards(trainer.model, counts, "wrapper")
        count_grad_forwards(distributed.unwrap(trainer.model), counts, "module")
        losses = StepLosses()
        trainer.hooks.append(losses)
        init = snapshot(distributed.unwrap(trainer.model).state_dict())
        trainer.train()
        torch.save({"init": init, "model": snapshot(distributed.unwrap(trainer.model).state_dict()),
                    "method": trainer.method.state_dict(), "losses": losses.losses, "forwards": counts,
                    "wrapped": type(trainer.model).__name__}, out / f"{name}.rank{rank}.pt")
        print(f"rank {rank}: {name} done", flush=True)
    distributed.teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
