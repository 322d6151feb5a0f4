"""Trainer hooks: LR schedule, evaluation, MLflow logging, checkpoints, progress, epoch callbacks.

A hook may implement ``before_train(trainer)``, ``after_step(trainer, out)``, ``after_epoch(trainer,
result)``, ``after_train(trainer)`` and ``on_failure(trainer, exc)``. Hooks run in the order of their
``priority`` (lower first; a hook without one runs last) and talk to each other only through the
:class:`EpochResult` of the epoch (evaluations, the reported model, whether it is a new best, the metrics
to log) and the trainer's ``history`` (step → metrics of every epoch reported so far, saved in
checkpoints). The order that matters: evaluate, let the method react, log to MLflow, then checkpoint, so
a checkpoint never says an epoch is done before MLflow has its metrics.

On a failure or a stop, ``on_failure`` runs by ``failure_priority`` (default: ``priority``): the
checkpoint first, so an unreachable tracking store cannot cost the resumable state; each hook runs
isolated (its own error is printed as a warning, the others still run, the original error stays).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from semiseg.checkpoint import Weights, rng_state, save_training, save_weights
from semiseg.config import config_hash, config_to_dict, save_config
from semiseg.distributed import gather_objects, lost_peer, sum_over_ranks, unwrap
from semiseg.errors import StopRequested, TrainingDiverged
from semiseg.evaluate import EvalResult, evaluate
from semiseg.protocol import epoch_protocol, evaluates_after
from semiseg.optim import poly_lr
from semiseg.runfiles import PROGRESS_FILE, write_json
from semiseg.tracking import REPORTED_MODEL_TAG, is_storage_error

#: ``callback(epoch, metrics, last_checkpoint)``: called after each epoch by :class:`EpochCallback`
EpochFn = Callable[[int, dict[str, float], Path], None]


@dataclass
class EpochResult:
    """What one epoch produced, handed to every hook's ``after_epoch`` in priority order."""

    epoch: int  # completed epochs (1-based number of this epoch)
    terms: dict[str, float]  # mean logged loss terms
    seconds: float
    images_per_s: float
    evals: dict[str, EvalResult] = field(default_factory=dict)  # model name → its evaluation ({}: not evaluated)
    reported_model: str = "student"
    is_best: bool = False
    metrics: dict[str, float] = field(default_factory=dict)  # what is logged for this epoch (MLflow step epoch-1)

    @property
    def reported(self) -> EvalResult:
        return self.evals[self.reported_model]


class Hook:
    priority: int = 100

    def before_train(self, trainer) -> None: ...
    def after_step(self, trainer, out) -> None: ...
    def after_epoch(self, trainer, result: EpochResult) -> None: ...
    def after_train(self, trainer) -> None: ...
    def on_failure(self, trainer, exc: BaseException) -> None: ...


class PolyLR(Hook):
    """Poly decay after every optimizer step, per parameter group (docs/methods.md §1.5)."""

    priority = 10

    def after_step(self, trainer, out) -> None:
        it = trainer.state.iteration - 1
        for group in trainer.optimizer.param_groups:
            group["lr"] = poly_lr(group["base_lr"], it, trainer.total_iters, trainer.cfg.optim.poly_power)


class Evaluate(Hook):
    """Evaluate every model of the method (the student; also the EMA teacher for V2) after every
    ``eval.every_n_epochs``-th epoch and the last one; after the other epochs the metrics are the training
    ones only (no ``val/*``), ``result.evals`` stays empty and ``is_best`` False, the run state's mIoUs stay.

    The *reported* model (``eval.report_model`` when the method has it, else the student) drives the
    last/best mIoU of the run state and ``best.pth``; each model's own best is kept in
    ``state.extra['best'][name]`` (``{'miou', 'epoch'}``). Fills the result's evaluations and metrics.
    """

    priority = 20

    def after_epoch(self, trainer, result: EpochResult) -> None:
        state, cfg = trainer.state, trainer.cfg
        models = trainer.method.eval_models()
        result.reported_model = cfg.eval.report_model if cfg.eval.report_model in models else "student"
        if evaluates_after(state.epoch, cfg.train.epochs, cfg.eval.every_n_epochs):
            self._evaluate(trainer, result, models)
        result.metrics = epoch_metrics(trainer, result)
        trainer.history[state.epoch - 1] = result.metrics

    @staticmethod
    def _evaluate(trainer, result: EpochResult, models: dict) -> None:
        """Evaluate ``models`` into ``result.evals``; update the run state's last, best and per-model bests."""
        state, cfg = trainer.state, trainer.cfg
        protocol = epoch_protocol(trainer.data.protocol, state.epoch - 1, cfg.train.epochs,
                                  cfg.eval.center_crop_until_last)
        result.evals = {name: evaluate(unwrap(model), trainer.data.val_loader, trainer.data.num_classes,
                                       trainer.device, protocol, reduce=sum_over_ranks,
                                       channels_last=cfg.speed.channels_last)
                        for name, model in models.items()}
        state.extra["reported_model"] = result.reported_model
        result.is_best = result.reported.miou > state.best_miou or state.best_epoch < 0
        state.last_miou = result.reported.miou
        if result.is_best:
            state.best_miou, state.best_epoch = result.reported.miou, state.epoch - 1
            state.extra["best_iou"] = result.reported.iou
        best = state.extra.setdefault("best", {})
        for name, res in result.evals.items():
            if name not in best or res.miou > best[name]["miou"]:
                best[name] = {"miou": res.miou, "epoch": state.epoch - 1}


class MethodEpochEnd(Hook):
    """Let the method act on the epoch's evaluation (e.g. PrevMatch snapshots) before it is checkpointed."""

    priority = 30

    def after_epoch(self, trainer, result: EpochResult) -> None:
        trainer.method.end_epoch(trainer, result)


def epoch_metrics(trainer, result: EpochResult) -> dict[str, float]:
    """The metrics of the epoch just completed (train terms, learning rates, speed; validation IoUs when it
    was evaluated)."""
    state, names = trainer.state, trainer.data.class_names
    metrics = {f"train/{k}": v for k, v in result.terms.items()}
    metrics.update({
        "train/lr": trainer.optimizer.param_groups[0]["lr"],
        "train/lr_head": trainer.optimizer.param_groups[1]["lr"],
        "train/images_per_s": result.images_per_s,
        "train/epoch_seconds": result.seconds,
    })
    if not result.evals:
        return metrics
    metrics.update({
        "val/miou": result.reported.miou,
        "val/best_miou": state.best_miou,
    })
    metrics.update({f"val/iou/{name}": v for name, v in zip(names, result.reported.iou)})
    if len(result.evals) > 1:  # e.g. V2: student and EMA side by side; val/miou is the reported one
        for model, res in result.evals.items():
            metrics[f"val/miou_{model}"] = res.miou
            metrics[f"val/best_miou_{model}"] = state.extra["best"][model]["miou"]
    return metrics


class MLflowLogging(Hook):
    """Per-epoch metrics, final metrics, artifacts and the run's end status, into the run the assembly opened.

    ``logged`` holds the epochs (MLflow steps) the run already has: a resumed run logs only what it lacks,
    re-logging from the checkpoint's history what an earlier attempt (or a lost store) never recorded, so
    no step is missing or doubled. An epoch's metrics and tags go in one ``log_batch`` (all or nothing).
    """

    priority = 40

    def __init__(self, tracker, run_dir: Path, logged: set[int], has_final: bool) -> None:
        self.tracker, self.run_dir, self.logged, self.has_final = tracker, run_dir, logged, has_final

    def _log_epoch(self, step: int, metrics: dict[str, float], reported_model: str) -> None:
        if step not in self.logged:
            self.tracker.log(metrics, step, tags={REPORTED_MODEL_TAG: reported_model})
            self.logged.add(step)

    def before_train(self, trainer) -> None:
        reported = trainer.state.extra.get("reported_model", "student")
        for step in sorted(trainer.history):
            self._log_epoch(step, trainer.history[step], reported)

    def after_epoch(self, trainer, result: EpochResult) -> None:
        self._log_epoch(trainer.state.epoch - 1, result.metrics, result.reported_model)

    def after_train(self, trainer) -> None:
        state, names = trainer.state, trainer.data.class_names
        if not self.has_final:
            final = {"best_miou": state.best_miou, "last_miou": state.last_miou, "best_epoch": state.best_epoch}
            if len(state.extra.get("best", {})) > 1:
                for model, best in state.extra["best"].items():
                    final.update({f"best_miou_{model}": best["miou"], f"best_epoch_{model}": best["epoch"]})
            self.tracker.log(final, state.epoch - 1)
            self.has_final = True
        last = trainer.history.get(state.epoch - 1, {})
        per_class = {"reported_model": state.extra.get("reported_model", "student"), "best_epoch": state.best_epoch,
                     "best": dict(zip(names, state.extra.get("best_iou", []))),
                     "last": {name: last.get(f"val/iou/{name}") for name in names}}
        write_json(self.run_dir / "per_class_iou.json", per_class)
        ckpts = {"last": str((self.run_dir / "last.pth").resolve()), "best": str((self.run_dir / "best.pth").resolve())}
        write_json(self.run_dir / "checkpoints.json", ckpts)
        save_config(trainer.cfg, self.run_dir / "config.yaml")
        weights = {"off": (), "best": ("best.pth",), "all": ("best.pth", "last.pth")}[
            trainer.cfg.runtime.log_checkpoints]
        for name in ("per_class_iou.json", "checkpoints.json", "config.yaml"):
            self.tracker.log_artifact(self.run_dir / name)
        for name in weights:
            if (self.run_dir / name).is_file():
                self.tracker.log_artifact(self.run_dir / name)
        self.tracker.set_tags({"semiseg.checkpoint.best": ckpts["best"], "semiseg.checkpoint.last": ckpts["last"]})
        self.tracker.finish("FINISHED")

    def on_failure(self, trainer, exc: BaseException) -> None:
        if self.tracker.run_id is None:
            return
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self.tracker.set_tags({"semiseg.interrupted_at_epoch": trainer.state.epoch})
            self.tracker.finish("KILLED")
        elif is_storage_error(exc):  # transient: resumable once space or permissions are back
            self.tracker.set_tags({"semiseg.error": f"storage: {exc}"})
            self.tracker.finish("KILLED")
        elif lost_peer(exc):  # another rank died: resumable like a kill
            self.tracker.set_tags({"semiseg.error": f"lost a data-parallel rank: {str(exc)[:300]}"})
            self.tracker.finish("KILLED")
        else:
            kind = "diverged" if isinstance(exc, TrainingDiverged) else type(exc).__name__
            self.tracker.set_tags({"semiseg.error": f"{kind}: {exc}"})
            self.tracker.finish("FAILED")


def training_state(trainer, rngs: list[dict] | None = None) -> dict:
    """The fields of a training checkpoint (:func:`semiseg.checkpoint.save_training`) for the trainer now;
    ``rngs``: every rank's random states (default: this process's, a run of one process)."""
    return {"model": unwrap(trainer.model).state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scaler": trainer.scaler.state_dict(), "method": trainer.method.state_dict(),
            "state": dataclasses.asdict(trainer.state), "rng": rngs or [rng_state(trainer.device)],
            "config": config_to_dict(trainer.cfg),
            "config_hash": config_hash(trainer.cfg), "experiment": trainer.cfg.runtime.experiment,
            "mlflow_run_id": trainer.run_id, "history": {str(k): v for k, v in trainer.history.items()}}


class Checkpointing(Hook):
    """Atomic ``last.pth`` (everything needed for an exact resume, the method's EMA teacher included) and
    ``best.pth`` (a weights file of the reported model) on improvement.

    ``last.pth`` is written after every epoch (after its metrics are in MLflow), every
    ``runtime.checkpoint_every_iters`` iterations inside an epoch, and when a graceful stop
    (:class:`StopRequested`) halts training at a step boundary. Resuming is the run assembly's job.
    """

    priority = 50
    #: on a failure the checkpoint comes first: nothing that runs before it (an unreachable tracking store)
    #: can cost the resumable state
    failure_priority = 0

    def __init__(self, run_dir: Path, save: bool = True) -> None:
        self.last = run_dir / "last.pth"
        self.best = run_dir / "best.pth"
        self.save = save  # False on data-parallel ranks other than 0

    def _save_last(self, trainer) -> None:
        """On every rank at the same point (a collective): rank 0 writes every rank's random states."""
        trainer.sync()  # on every rank (the same iterations): the epoch sums as floats, no diverged model saved
        rngs = gather_objects(rng_state(trainer.device))
        if self.save:
            save_training(self.last, **training_state(trainer, rngs))

    def after_step(self, trainer, out) -> None:
        every = trainer.cfg.runtime.checkpoint_every_iters
        if every and trainer.state.epoch_iter % every == 0 and trainer.state.epoch_iter < trainer.steps_per_epoch:
            self._save_last(trainer)

    def after_epoch(self, trainer, result: EpochResult) -> None:
        if self.save and result.is_best:  # before last.pth: a resume from last.pth never lacks the best.pth it implies
            reported = unwrap(trainer.method.eval_models()[result.reported_model]).state_dict()
            save_weights(self.best, Weights(reported, config_to_dict(trainer.cfg),
                                            {"reported_model": result.reported_model, "epoch": trainer.state.epoch,
                                             "miou": result.reported.miou, "config_hash": config_hash(trainer.cfg)}))
        self._save_last(trainer)

    def on_failure(self, trainer, exc: BaseException) -> None:
        if isinstance(exc, StopRequested) and trainer.state.epoch_iter:  # epoch ends are saved; all ranks stop here
            self._save_last(trainer)
            if not self.save:
                return
            print(f"checkpointed at iteration {trainer.state.epoch_iter} of epoch {trainer.state.epoch + 1} "
                  f"after {exc}", flush=True)


def evaluations(history: dict[int, dict[str, float]]) -> list[list[float]]:
    """``[epoch, val mIoU, best val mIoU]`` of every evaluated epoch in a trainer's ``history``, in order."""
    return [[step + 1, m["val/miou"], m["val/best_miou"]] for step, m in sorted(history.items()) if "val/miou" in m]


class Progress(Hook):
    """A line per epoch (and one every ``every_s`` seconds inside long epochs, with an ETA) on stdout, and
    ``progress.json`` for the orchestrator's status display and for a tuner watching a run from outside
    (``evaluations``: each evaluated epoch's val mIoU and best val mIoU)."""

    priority = 60

    def __init__(self, run_dir: Path, label: str, every_s: float = 30.0) -> None:
        self.path, self.label, self.every_s = run_dir / PROGRESS_FILE, label, every_s
        self.start = self.last_line = time.time()
        self.start_iter = 0

    def _write(self, trainer, status: str) -> None:
        state = trainer.state
        write_json(self.path, {"epoch": state.epoch, "epochs": trainer.cfg.train.epochs,
                               "iteration": state.iteration, "total_iters": trainer.total_iters,
                               "last_miou": state.last_miou, "best_miou": state.best_miou, "status": status,
                               "eta_s": self._eta(trainer), "pid": os.getpid(), "updated": time.time(),
                               "evaluations": evaluations(trainer.history)})

    def _eta(self, trainer) -> float | None:
        done = trainer.state.iteration - self.start_iter
        if done <= 0:
            return None
        return (time.time() - self.start) / done * (trainer.total_iters - trainer.state.iteration)

    def before_train(self, trainer) -> None:
        self.start, self.start_iter = time.time(), trainer.state.iteration
        self._write(trainer, "running")

    def after_step(self, trainer, out) -> None:
        if time.time() - self.last_line >= self.every_s:
            self.last_line = time.time()
            s = trainer.state
            print(f"[{self.label}] epoch {s.epoch + 1}/{trainer.cfg.train.epochs} it {s.epoch_iter}/"
                  f"{trainer.data.iters_per_epoch}, ETA {self._eta(trainer) or 0:.0f}s", flush=True)
            self._write(trainer, "running")

    def after_epoch(self, trainer, result: EpochResult) -> None:
        s, terms = trainer.state, result.terms
        models = "".join(f" {name} {r.miou:.2f}" for name, r in result.evals.items()) if len(result.evals) > 1 else ""
        miou = f"mIoU {s.last_miou:.2f}{models}" if result.evals else "not evaluated"
        print(f"[{self.label}] epoch {s.epoch}/{trainer.cfg.train.epochs} it {s.iteration} "
              f"loss {terms.get('loss', float('nan')):.4f} {miou} best {s.best_miou:.2f} "
              f"({result.seconds:.1f}s, {result.images_per_s:.0f} img/s, ETA {self._eta(trainer) or 0:.0f}s)",
              flush=True)
        self.last_line = time.time()
        self._write(trainer, "running")

    def after_train(self, trainer) -> None:
        self._write(trainer, "finished")
        print(f"[{self.label}] done: best mIoU {trainer.state.best_miou:.2f} at epoch "
              f"{trainer.state.best_epoch + 1} ({time.time() - self.start:.0f}s)", flush=True)

    def on_failure(self, trainer, exc: BaseException) -> None:
        try:
            self._write(trainer, "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed")
        except OSError:  # the disk that stopped the run may refuse this too
            pass
        sys.stdout.flush()


class EpochCallback(Hook):
    """Hand each epoch's metrics and the fresh ``last.pth`` to a plain function (e.g. a tuner's report).

    It runs after :class:`Checkpointing`, so the checkpoint it names is the one of this epoch. The engine
    knows nothing of the caller: the function may stop training by raising.
    """

    priority = 70

    def __init__(self, fn: EpochFn, run_dir: Path) -> None:
        self.fn, self.last = fn, run_dir / "last.pth"

    def after_epoch(self, trainer, result: EpochResult) -> None:
        self.fn(trainer.state.epoch, result.metrics, self.last)


#: Tag set on a run that falls behind the official curve of its cell (:class:`OfficialCurveAlert`).
ALERT_TAG = "semiseg.alert"


class OfficialCurveAlert(Hook):
    """Compare each evaluation with the official curve of the cell (``runtime.alert_behind`` points,
    ``runtime.alert_patience`` evaluations in a row): tag the run :data:`ALERT_TAG` and, with
    ``runtime.alert_stop``, stop it as a signal would (KILLED, resumable). The streak is counted from the run's
    whole history, so a resumed run keeps it."""

    priority = 65  # after the epoch's metrics (40) and checkpoint (50) are written

    def __init__(self, tracker, official: dict[int, float]) -> None:
        self.tracker, self.official = tracker, official

    def after_epoch(self, trainer, result: EpochResult) -> None:
        rt = trainer.cfg.runtime
        streak, worst = 0, None
        for step in sorted(trainer.history):
            value = trainer.history[step].get("val/miou")
            if value is None or step not in self.official:
                continue
            behind = self.official[step] - value
            streak = streak + 1 if behind >= rt.alert_behind else 0
            worst = (step, value, self.official[step])
        step = trainer.state.epoch - 1
        if streak < rt.alert_patience or worst is None or worst[0] != step:
            return
        _, value, official = worst
        message = (f"{official - value:.2f} points behind the official curve at epoch {step + 1} ({value:.2f} vs "
                   f"{official:.2f}), {streak} evaluations in a row at least {rt.alert_behind:g} behind")
        self.tracker.set_tags({ALERT_TAG: message, ALERT_TAG + ".epoch": step + 1})
        print(f"alert: {message}" + ("; stopping (resumable)" if rt.alert_stop else ""), flush=True)
        if rt.alert_stop:
            trainer.request_stop(0)
