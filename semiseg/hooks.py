"""Trainer hooks: LR schedule, evaluation, checkpoint/resume, MLflow logging, progress, epoch callbacks.

Each hook may implement ``before_train``, ``after_step``, ``after_epoch``, ``after_train`` and
``on_failure``; the base class makes all of them no-ops.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

from semiseg.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from semiseg.config import config_hash, config_to_dict, flatten, save_config
from semiseg.distributed import sum_over_ranks, unwrap
from semiseg.errors import StopRequested, TrainingDiverged
from semiseg.evaluate import epoch_protocol, evaluate
from semiseg.optim import poly_lr
from semiseg.tracking import REPORTED_MODEL_TAG

#: ``callback(epoch, metrics, last_checkpoint)``: called after each epoch by :class:`EpochCallback`
EpochFn = Callable[[int, dict[str, float], Path], None]


class Hook:
    def before_train(self, trainer) -> None: ...
    def after_step(self, trainer, out) -> None: ...
    def after_epoch(self, trainer) -> None: ...
    def after_train(self, trainer) -> None: ...
    def on_failure(self, trainer, exc: BaseException) -> None: ...


class PolyLR(Hook):
    """Poly decay after every optimizer step, per parameter group (spec §1.5)."""

    def after_step(self, trainer, out) -> None:
        it = trainer.state.iteration - 1
        for group in trainer.optimizer.param_groups:
            group["lr"] = poly_lr(group["base_lr"], it, trainer.total_iters, trainer.cfg.optim.poly_power)


class Evaluate(Hook):
    """Evaluate every model of the method (the student; also the EMA teacher for V2) after every epoch.

    The *reported* model (``eval.report_model`` when the method has it, else the student) drives the
    last/best mIoU of the run state and ``best.pth``; each model's own best is kept in
    ``state.extra['best'][name]`` (``{'miou', 'epoch'}``).
    """

    def after_epoch(self, trainer) -> None:
        models = trainer.method.eval_models()
        protocol = epoch_protocol(trainer.data.protocol, trainer.state.epoch - 1, trainer.cfg.train.epochs,
                                  trainer.cfg.eval.center_crop_until_last)
        trainer.evals = {name: evaluate(unwrap(model), trainer.data.val_loader, trainer.data.num_classes,
                                        trainer.device, protocol, reduce=sum_over_ranks)
                         for name, model in models.items()}
        wanted = trainer.cfg.eval.report_model
        trainer.reported_model = wanted if wanted in models else "student"
        result = trainer.evals[trainer.reported_model]
        state = trainer.state
        trainer.last_eval = result
        trainer.is_best = result.miou > state.best_miou or state.best_epoch < 0
        state.last_miou = result.miou
        if trainer.is_best:
            state.best_miou, state.best_epoch = result.miou, state.epoch - 1
            state.extra["best_iou"] = result.iou
        best = state.extra.setdefault("best", {})
        for name, res in trainer.evals.items():
            if name not in best or res.miou > best[name]["miou"]:
                best[name] = {"miou": res.miou, "epoch": state.epoch - 1}


class MethodEpochEnd(Hook):
    """Let the method act on the epoch's evaluation (e.g. PrevMatch snapshots); runs before Checkpointing."""

    def after_epoch(self, trainer) -> None:
        trainer.method.end_epoch(trainer)


def epoch_metrics(trainer) -> dict[str, float]:
    """The metrics of the epoch just completed (train terms, learning rates, speed, validation IoUs)."""
    state, names = trainer.state, trainer.data.class_names
    metrics = {f"train/{k}": v for k, v in trainer.epoch_terms.items()}
    metrics.update({
        "train/lr": trainer.optimizer.param_groups[0]["lr"],
        "train/lr_head": trainer.optimizer.param_groups[1]["lr"],
        "train/images_per_s": trainer.images_per_second,
        "train/epoch_seconds": trainer.epoch_seconds,
        "val/miou": trainer.last_eval.miou,
        "val/best_miou": state.best_miou,
    })
    metrics.update({f"val/iou/{name}": v for name, v in zip(names, trainer.last_eval.iou)})
    return metrics


class Checkpointing(Hook):
    """Atomic ``last.pth`` (everything needed for an exact resume, the method's EMA teacher included) and
    ``best.pth`` (the reported model's weights) on improvement.

    ``last.pth`` is written after every epoch, every ``runtime.checkpoint_every_iters`` iterations inside
    an epoch, and when a graceful stop (:class:`StopRequested`) halts training at a step boundary.
    ``before_train`` resumes from ``last.pth`` when it exists.
    """

    def __init__(self, run_dir: Path, save: bool = True) -> None:
        self.last = run_dir / "last.pth"
        self.best = run_dir / "best.pth"
        self.save = save  # False on data-parallel ranks other than 0: they only load

    def before_train(self, trainer) -> None:
        if not self.last.exists():
            return
        ckpt = load_checkpoint(self.last)
        unwrap(trainer.model).load_state_dict(ckpt["model"])
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.scaler.load_state_dict(ckpt["scaler"])
        trainer.method.load_state_dict(ckpt["method"])
        trainer.state = type(trainer.state)(**ckpt["state"])
        trainer.run_id = ckpt.get("mlflow_run_id") or trainer.run_id
        set_rng_state(ckpt["rng"])
        trainer.resumed_from = trainer.state.epoch
        within = f", iteration {trainer.state.epoch_iter} of epoch {trainer.state.epoch + 1}" \
            if trainer.state.epoch_iter else ""
        print(f"resumed from {self.last} at epoch {trainer.state.epoch}{within}", flush=True)

    def _save_last(self, trainer) -> dict:
        if not self.save:
            return {}
        state = {
            "model": unwrap(trainer.model).state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scaler": trainer.scaler.state_dict(),
            "method": trainer.method.state_dict(),
            "state": dataclasses.asdict(trainer.state),
            "rng": rng_state(),
            "config": config_to_dict(trainer.cfg),
            "config_hash": config_hash(trainer.cfg),
            "mlflow_run_id": trainer.run_id,
        }
        save_checkpoint(state, self.last)
        return state

    def after_step(self, trainer, out) -> None:
        every = trainer.cfg.runtime.checkpoint_every_iters
        if every and trainer.state.epoch_iter % every == 0 and trainer.state.epoch_iter < trainer.steps_per_epoch:
            self._save_last(trainer)

    def after_epoch(self, trainer) -> None:
        state = self._save_last(trainer)
        if trainer.is_best and state:
            reported = unwrap(trainer.method.eval_models()[trainer.reported_model]).state_dict()
            save_checkpoint({"model": reported, "reported_model": trainer.reported_model, "state": state["state"],
                             "config": state["config"], "config_hash": state["config_hash"]}, self.best)

    def on_failure(self, trainer, exc: BaseException) -> None:
        if isinstance(exc, StopRequested) and trainer.state.epoch_iter and self.save:  # epoch ends are saved
            self._save_last(trainer)
            print(f"checkpointed at iteration {trainer.state.epoch_iter} of epoch {trainer.state.epoch + 1} "
                  f"after {exc}", flush=True)


class MLflowLogging(Hook):
    """One MLflow run per training run: params, tags, per-epoch metrics, final metrics, artifacts, status."""

    def __init__(self, tracker, run_dir: Path, tags: dict, params: dict) -> None:
        self.tracker, self.run_dir, self.tags, self.params = tracker, run_dir, tags, params

    def before_train(self, trainer) -> None:
        run_id = trainer.run_id
        if run_id is None and (self.run_dir / "run.json").exists():  # started before without a checkpoint
            run_id = json.loads((self.run_dir / "run.json").read_text()).get("run_id")
        trainer.run_id = self.tracker.start(self.tags["semiseg.hash"][:10], self.tags, run_id)
        (self.run_dir / "run.json").write_text(json.dumps({"run_id": trainer.run_id}))
        self.tracker.log_params({**flatten(config_to_dict(trainer.cfg)), **self.params})
        if trainer.resumed_from is not None:
            self.tracker.set_tags({"semiseg.resumed_at_epoch": trainer.resumed_from})

    def after_epoch(self, trainer) -> None:
        metrics = epoch_metrics(trainer)
        if len(trainer.evals) > 1:  # e.g. V2: student and EMA side by side; val/miou is the reported one
            for model, result in trainer.evals.items():
                metrics[f"val/miou_{model}"] = result.miou
                metrics[f"val/best_miou_{model}"] = trainer.state.extra["best"][model]["miou"]
        self.tracker.log_metrics(metrics, step=trainer.state.epoch - 1)
        self.tracker.set_tags({REPORTED_MODEL_TAG: trainer.reported_model})

    def after_train(self, trainer) -> None:
        state, names = trainer.state, trainer.data.class_names
        final = {"best_miou": state.best_miou, "last_miou": state.last_miou, "best_epoch": state.best_epoch}
        if len(trainer.evals) > 1:
            for model, best in state.extra["best"].items():
                final.update({f"best_miou_{model}": best["miou"], f"best_epoch_{model}": best["epoch"]})
        self.tracker.log_metrics(final, step=state.epoch - 1)
        per_class = {"reported_model": trainer.reported_model, "best_epoch": state.best_epoch,
                     "best": dict(zip(names, state.extra.get("best_iou", []))),
                     "last": dict(zip(names, trainer.last_eval.iou))}
        (self.run_dir / "per_class_iou.json").write_text(json.dumps(per_class, indent=1))
        ckpts = {"last": str((self.run_dir / "last.pth").resolve()), "best": str((self.run_dir / "best.pth").resolve())}
        (self.run_dir / "checkpoints.json").write_text(json.dumps(ckpts, indent=1))
        save_config(trainer.cfg, self.run_dir / "config.yaml")
        for name in ("per_class_iou.json", "checkpoints.json", "config.yaml"):
            self.tracker.log_artifact(self.run_dir / name)
        self.tracker.set_tags({"semiseg.checkpoint.best": ckpts["best"], "semiseg.checkpoint.last": ckpts["last"]})
        self.tracker.finish("FINISHED")

    def on_failure(self, trainer, exc: BaseException) -> None:
        if trainer.run_id is None or self.tracker.run_id is None:
            return
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self.tracker.set_tags({"semiseg.interrupted_at_epoch": trainer.state.epoch})
            self.tracker.finish("KILLED")
            return
        kind = "diverged" if isinstance(exc, TrainingDiverged) else type(exc).__name__
        self.tracker.set_tags({"semiseg.error": f"{kind}: {exc}"})
        self.tracker.finish("FAILED")


class Progress(Hook):
    """A line per epoch on stdout, and ``progress.json`` for the orchestrator's status display."""

    def __init__(self, run_dir: Path, label: str) -> None:
        self.path, self.label = run_dir / "progress.json", label
        self.start = time.time()

    def _write(self, trainer, status: str) -> None:
        state = trainer.state
        data = {"epoch": state.epoch, "epochs": trainer.cfg.train.epochs, "iteration": state.iteration,
                "last_miou": state.last_miou, "best_miou": state.best_miou, "status": status,
                "pid": os.getpid(), "updated": time.time()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def before_train(self, trainer) -> None:
        self._write(trainer, "running")

    def after_epoch(self, trainer) -> None:
        s, terms = trainer.state, trainer.epoch_terms
        models = "".join(f" {name} {r.miou:.2f}" for name, r in trainer.evals.items()) if len(trainer.evals) > 1 else ""
        print(f"[{self.label}] epoch {s.epoch}/{trainer.cfg.train.epochs} it {s.iteration} "
              f"loss {terms.get('loss', float('nan')):.4f} mIoU {s.last_miou:.2f}{models} best {s.best_miou:.2f} "
              f"({trainer.epoch_seconds:.1f}s, {trainer.images_per_second:.0f} img/s)", flush=True)
        self._write(trainer, "running")

    def after_train(self, trainer) -> None:
        self._write(trainer, "finished")
        print(f"[{self.label}] done: best mIoU {trainer.state.best_miou:.2f} at epoch "
              f"{trainer.state.best_epoch + 1} ({time.time() - self.start:.0f}s)", flush=True)

    def on_failure(self, trainer, exc: BaseException) -> None:
        self._write(trainer, "interrupted" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed")
        sys.stdout.flush()


class EpochCallback(Hook):
    """Hand each epoch's metrics and the fresh ``last.pth`` to a plain function (e.g. a tuner's report).

    Place it after :class:`Checkpointing` so the checkpoint it names is the one of this epoch. The engine
    knows nothing of the caller: the function may stop training by raising.
    """

    def __init__(self, fn: EpochFn, run_dir: Path) -> None:
        self.fn, self.last = fn, run_dir / "last.pth"

    def after_epoch(self, trainer) -> None:
        self.fn(trainer.state.epoch, epoch_metrics(trainer), self.last)
