"""The shared trainer: a loop that calls the method's step; everything else is a hook.

Hooks (see :mod:`semiseg.hooks`) get ``before_train``, ``after_step``, ``after_epoch``,
``after_train`` and ``on_failure`` calls, in list order.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from semiseg.config import RunConfig
from semiseg.data.device import to_device
from semiseg.data.sampling import TrainData
from semiseg.errors import StopRequested, TrainingDiverged
from semiseg.methods.base import Method, StepOutput


@dataclass
class TrainState:
    """Progress counters; saved in checkpoints. ``epoch`` counts completed epochs.

    ``epoch_iter`` and ``epoch_sums`` describe a partly done epoch (a mid-epoch checkpoint): the
    iterations already run in it and the running sums of its logged loss terms.
    """

    epoch: int = 0
    iteration: int = 0
    epoch_iter: int = 0
    epoch_sums: dict = field(default_factory=dict)
    best_miou: float = 0.0
    best_epoch: int = -1
    last_miou: float = 0.0
    extra: dict = field(default_factory=dict)


class Trainer:
    def __init__(self, cfg: RunConfig, model: nn.Module, method: Method, data: TrainData,
                 optimizer: torch.optim.Optimizer, device: torch.device, hooks: list,
                 agree: Callable[[bool], bool] = bool) -> None:
        """``agree(flag)`` makes a stop request unanimous across data-parallel processes (see
        :func:`semiseg.distributed.any_rank`); a single process uses it as is."""
        self.cfg, self.model, self.method, self.data = cfg, model, method, data
        self.optimizer, self.device, self.hooks, self.agree = optimizer, device, hooks, agree
        self.state = TrainState()
        self.total_iters = data.iters_per_epoch * cfg.train.epochs
        amp = cfg.train.amp if device.type == "cuda" else "off"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        self.epoch_terms: dict[str, float] = {}
        self.epoch_seconds = 0.0
        # filled in by hooks: the latest evaluation (of the reported model; of every model by name), which
        # model is reported, whether it is a new best, the MLflow run, resume point
        self.last_eval = None
        self.evals: dict = {}
        self.reported_model = "student"
        self.is_best = False
        self.run_id: str | None = None
        self.resumed_from: int | None = None
        self.stop_signal: int | None = None  # set by request_stop(); honoured at the next step boundary
        self.epoch_iters_run = 0  # iterations run by this process in the current epoch (speed figures)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _call(self, event: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, event)(self, *args)

    def _to_device(self, batch: dict) -> dict:
        return to_device(batch, self.device, self.data.norm)

    def run_step(self, batch: dict) -> StepOutput:
        """One iteration: method step under autocast, finite check, backward, optimizer step, method's after_step."""
        with self.autocast():
            out = self.method.step(batch)
        if not torch.isfinite(out.loss):
            terms = ", ".join(f"{k}={float(v):.4g}" for k, v in out.terms.items())
            raise TrainingDiverged(f"loss is {float(out.loss.detach())} at epoch {self.state.epoch} iteration "
                                   f"{self.state.iteration} ({terms})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out.loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.method.after_step(self.state.iteration)
        return out

    def request_stop(self, signum: int = 0) -> None:
        """Ask for a graceful stop: the current step completes, then :class:`StopRequested` is raised."""
        self.stop_signal = signum

    def _check_stop(self) -> None:
        if self.agree(self.stop_signal is not None):
            raise StopRequested(f"signal {self.stop_signal}")

    def train_epoch(self) -> None:
        """Run the rest of the current epoch (all of it, or from ``state.epoch_iter`` after a mid-epoch resume)."""
        state = self.state
        self.data.set_epoch(state.epoch, start_iter=state.epoch_iter)
        if state.epoch_iter == 0:  # a mid-epoch checkpoint holds the method state after its epoch start
            self.method.begin_epoch(state.epoch)
        self.model.train()
        iterators = {name: iter(self.data.loaders[name]) for name in self.method.streams}
        start = time.perf_counter()
        self.epoch_iters_run = 0
        while state.epoch_iter < self.data.iters_per_epoch:
            self._check_stop()
            batch = {name: self._to_device(next(it)) for name, it in iterators.items()}
            out = self.run_step(batch)
            state.iteration += 1
            state.epoch_iter += 1
            self.epoch_iters_run += 1
            for key, value in {"loss": out.loss.detach(), **out.terms}.items():
                state.epoch_sums[key] = state.epoch_sums.get(key, 0.0) + float(value)
            self._call("after_step", out)
        self.epoch_seconds = time.perf_counter() - start
        self.epoch_terms = {k: v / self.data.iters_per_epoch for k, v in state.epoch_sums.items()}
        state.epoch_iter, state.epoch_sums = 0, {}

    def train(self) -> TrainState:
        self._call("before_train")
        try:
            while self.state.epoch < self.cfg.train.epochs:
                self.train_epoch()
                self.state.epoch += 1
                self._call("after_epoch")
                self._check_stop()
            self._call("after_train")
        except BaseException as exc:
            self._call("on_failure", exc)
            raise
        return self.state

    @property
    def images_per_second(self) -> float:
        per_iter = self.cfg.train.batch_size * len(self.method.streams)
        return per_iter * self.epoch_iters_run / max(self.epoch_seconds, 1e-9)
