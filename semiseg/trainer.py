"""The shared trainer: a loop that calls the method's step; everything else is a hook.

Hooks (see :mod:`semiseg.hooks`) get ``before_train``, ``after_step``, ``after_epoch`` (with the epoch's
:class:`~semiseg.hooks.EpochResult`), ``after_train`` and ``on_failure`` calls, in the order of their
``priority``. The trainer is built, and resumed from a checkpoint, by :mod:`semiseg.runtime`.

An *iteration* is one optimizer step. With gradient accumulation (``train.accum_steps`` = K) it runs K
micro-batches, each loss scaled by 1/K, so the gradient is the mean over the micro-batches, as K times
the GPUs would average it; an epoch is the data's batches in groups of K. Caveat: BatchNorm normalises
(and updates its running statistics) per micro-batch, so BN layers see K small batches, not one big one.

Host-device syncs: by default the loss is checked for NaN/inf before each backward and the logged terms
are read per step. With ``speed.sync_every`` = N the check is a device-side flag read after every N-th
iteration (keyed on ``state.iteration``) and at :meth:`Trainer.sync` points (epoch end, mid-epoch
checkpoints), the terms are summed on the device in float64 (the same sums as Python's floats), and a
divergence is reported with the range of iterations since the last check. ``speed.stop_check_every`` = N
agrees on a stop request only before every N-th iteration and after each epoch.
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
from semiseg.distributed import average_bn_buffers
from semiseg.errors import ConfigError, StopRequested, TrainingDiverged
from semiseg.hooks import EpochResult
from semiseg.methods.base import Method, StepOutput
from semiseg.precision import resolve_amp


def optimizer_steps(micro_batches: int, accum_steps: int) -> int:
    """Optimizer steps per epoch: the epoch's ``micro_batches`` in groups of ``accum_steps`` (a rest is dropped)."""
    if accum_steps > micro_batches:
        raise ConfigError(f"key 'train.accum_steps': {accum_steps} micro-batches per optimizer step, but an epoch "
                          f"has {micro_batches} batches; it must be between 1 and {micro_batches}")
    return micro_batches // accum_steps


def mean_output(outs: list[StepOutput]) -> StepOutput:
    """The micro-batches' mean loss and terms (detached); a single output as it is."""
    if len(outs) == 1:
        return outs[0]
    loss = torch.stack([o.loss.detach() for o in outs]).mean()
    terms = {k: torch.stack([torch.as_tensor(o.terms[k], dtype=torch.float32) for o in outs]).mean()
             for k in outs[0].terms}
    return StepOutput(loss, terms)


def _terms(out: StepOutput) -> str:
    return ", ".join(f"{k}={float(v):.4g}" for k, v in out.terms.items())


@dataclass
class TrainState:
    """Progress counters; saved in checkpoints. ``epoch`` counts completed epochs, ``iteration`` optimizer steps.

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
        self.accum_steps = cfg.train.accum_steps
        self.steps_per_epoch = optimizer_steps(data.iters_per_epoch, self.accum_steps)
        self.total_iters = self.steps_per_epoch * cfg.train.epochs
        self.amp = resolve_amp(cfg.train.amp, device)  # the precision trained in: 'bf16', 'fp16' or 'off'
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        #: MLflow step (0-based epoch) → the metrics reported for it; saved in checkpoints
        self.history: dict[int, dict[str, float]] = {}
        self.run_id: str | None = None  # the MLflow run (None when untracked)
        self.last_result: EpochResult | None = None  # the latest epoch run by this process
        self.stop_signal: int | None = None  # set by request_stop(); honoured at the next step boundary
        self.epoch_iters_run = 0  # iterations run by this process in the current epoch (speed figures)
        self.sync_every, self.stop_check_every = cfg.speed.sync_every, cfg.speed.stop_check_every
        self._nonfinite: torch.Tensor | None = None  # sync_every > 1: a non-finite loss since the last check
        self._unchecked: tuple[int, int, StepOutput | None] = (0, 0, None)  # its first, last iteration, last output

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _call(self, event: str, *args) -> None:
        for hook in sorted(self.hooks, key=lambda h: h.priority):  # stable: equal priorities keep list order
            getattr(hook, event)(self, *args)

    def _call_failure(self, exc: BaseException) -> None:
        """Every hook's ``on_failure``, by ``failure_priority`` (default: ``priority``; the checkpoint first),
        each isolated: a hook's own error is reported and the others still run; ``exc`` stays the error."""
        for hook in sorted(self.hooks, key=lambda h: getattr(h, "failure_priority", h.priority)):
            try:
                hook.on_failure(self, exc)
            except Exception as err:  # noqa: BLE001 - one failing hook must not hide the stop or skip the others
                text = next((line for line in str(err).splitlines() if line.strip()), "")[:300]
                print(f"warning: {type(hook).__name__} could not record the {type(exc).__name__}: "
                      f"{type(err).__name__}: {text}", flush=True)

    def _to_device(self, batch: dict[str, dict]) -> dict[str, dict]:
        """A batch (one dict of tensors per stream) on the trainer's device, normalised there."""
        return {name: to_device(b, self.device, self.data.norm, self.cfg.speed.channels_last)
                for name, b in batch.items()}

    def _no_sync(self, sync: bool):
        """DDP's ``no_sync`` (gradients accumulate locally) unless ``sync``; nothing for a single process."""
        no_sync = getattr(self.model, "no_sync", None)
        return contextlib.nullcontext() if sync or no_sync is None else no_sync()

    def _check_finite(self, out: StepOutput) -> None:
        """Before the backward: raise on a non-finite loss (a sync), or with ``sync_every`` > 1 note it on the
        device for :meth:`_check_noted` (the step still runs)."""
        it = self.state.iteration
        if self.sync_every == 1:
            if not torch.isfinite(out.loss):
                raise TrainingDiverged(f"loss is {float(out.loss.detach())} at epoch {self.state.epoch} iteration "
                                       f"{it} ({_terms(out)})")
            return
        bad = ~torch.isfinite(out.loss.detach())
        if self._nonfinite is None:
            self._nonfinite, self._unchecked = bad, (it, it, out)
        else:
            self._nonfinite |= bad
            self._unchecked = (self._unchecked[0], it, out)

    def _check_noted(self) -> None:
        """Raise if a loss noted since the last check was not finite (one sync; nothing noted: nothing)."""
        if self._nonfinite is None:
            return
        bad, self._nonfinite = bool(self._nonfinite), None
        first, last, out = self._unchecked
        if bad:
            raise TrainingDiverged(f"loss is not finite at epoch {self.state.epoch} in iterations {first}-{last} "
                                   f"(iteration {last}: loss={float(out.loss.detach()):.4g}, {_terms(out)})")

    def sync(self) -> None:
        """A host-device sync point: raise on a noted non-finite loss, make the epoch sums plain floats."""
        self._check_noted()
        self.state.epoch_sums = {k: float(v) for k, v in self.state.epoch_sums.items()}

    def _logged(self, value) -> float | torch.Tensor:
        """A logged term as it is summed: a float (one sync), or with ``sync_every`` > 1 a float64 tensor."""
        if self.sync_every > 1 and torch.is_tensor(value):
            return value.detach().double()
        return float(value)

    def run_step(self, *batches: dict) -> StepOutput:
        """One optimizer step over the micro-batches ``batches`` (one, or ``train.accum_steps``).

        Per micro-batch: the method's step under autocast, a finite check, backward of loss/K (DDP all-reduces
        with the last micro-batch only). Then the optimizer step, BN statistics made equal over the ranks, and
        the method's ``after_step`` (e.g. the EMA update). Returns the micro-batches' mean loss and terms.
        """
        self.optimizer.zero_grad(set_to_none=False)  # gradients stay allocated: DDP's bucket views persist
        outs = []
        for i, batch in enumerate(batches):
            with self._no_sync(sync=i == len(batches) - 1):
                with self.autocast():
                    out = self.method.step(self._to_device(batch))
                self._check_finite(out)
                self.scaler.scale(out.loss / len(batches)).backward()
            outs.append(out)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        average_bn_buffers(self.model)
        self.method.after_step(self.state.iteration)
        if (self.state.iteration + 1) % self.sync_every == 0:
            self._check_noted()
        return mean_output(outs)

    def request_stop(self, signum: int = 0) -> None:
        """Ask for a graceful stop: the current step completes, then :class:`StopRequested` is raised."""
        self.stop_signal = signum

    def _check_stop(self) -> None:
        if self.agree(self.stop_signal is not None):
            raise StopRequested(f"signal {self.stop_signal}")

    def train_epoch(self) -> EpochResult:
        """Run the rest of the current epoch (all of it, or from ``state.epoch_iter`` after a mid-epoch resume)."""
        state = self.state
        self.data.set_epoch(state.epoch, start_iter=state.epoch_iter * self.accum_steps)
        if state.epoch_iter == 0:  # a mid-epoch checkpoint holds the method state after its epoch start
            self.method.begin_epoch(state.epoch)
        self.model.train()
        iterators = {name: iter(self.data.loaders[name]) for name in self.method.streams}
        start = time.perf_counter()
        self.epoch_iters_run = 0
        while state.epoch_iter < self.steps_per_epoch:
            if state.iteration % self.stop_check_every == 0:  # the same iterations on every rank
                self._check_stop()
            micro = [{name: next(it) for name, it in iterators.items()} for _ in range(self.accum_steps)]
            out = self.run_step(*micro)
            state.iteration += 1
            state.epoch_iter += 1
            self.epoch_iters_run += 1
            for key, value in {"loss": out.loss.detach(), **out.terms}.items():
                state.epoch_sums[key] = state.epoch_sums.get(key, 0.0) + self._logged(value)
            self._call("after_step", out)
        self.sync()
        seconds = time.perf_counter() - start
        terms = {k: v / self.steps_per_epoch for k, v in state.epoch_sums.items()}
        state.epoch_iter, state.epoch_sums = 0, {}
        images = self.cfg.train.batch_size * len(self.method.streams) * self.accum_steps * self.epoch_iters_run
        return EpochResult(state.epoch + 1, terms, seconds, images / max(seconds, 1e-9))

    def train(self) -> TrainState:
        self._call("before_train")
        try:
            while self.state.epoch < self.cfg.train.epochs:
                result = self.train_epoch()
                self.state.epoch += 1
                self._call("after_epoch", result)
                self.last_result = result
                self._check_stop()
            self._call("after_train")
        except BaseException as exc:
            self._call_failure(exc)
            raise
        return self.state
