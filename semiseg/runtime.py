"""The one run assembly and the run lifecycle: every entry point (CLI, local, SLURM, Ray, Tune, pretext)
builds and runs a training here.

:func:`build_trainer` assembles a run: threads, device and process group, seeding, named weights, data,
model, method, optimizer, the resume point, the MLflow run and the standard hooks. :func:`run` wraps it in
the lifecycle: the cell lock, signals, setup-failure records, and the end states below.

The lifecycle of one cell of one experiment (its folder ``<output_dir>/<experiment>/<hash>``):

- **start**: take the cell lock (or inherit a launcher's), remove torn ``*.tmp`` files. A cell whose
  recorded MLflow run is FINISHED is not touched: :func:`run` says so and returns.
- **resume point**: ``last.pth`` is used only when it was written by this cell of this experiment (config
  hash and experiment checked; a foreign one is an error and changes nothing). An unreadable one is moved
  aside (``last.pth.corrupt-<time>``) and the cell starts over.
- **the run**: the checkpoint's run id, else ``run.json``'s; a run the store has lost gives a warning and
  a new run that continues from the checkpoint. A new run is created with its identity tags in one call;
  ``run.json`` first records a token that the run is tagged with, so a kill between the two never leaves
  an orphan (the next start adopts the run with that token).
- **each epoch**: evaluate, log the metrics (one batch), then write ``last.pth`` holding the metric history:
  a resume re-logs whatever MLflow lacks and never logs an epoch twice.
- **end**: final metrics and artifacts (each once), then FINISHED. A stop signal → KILLED with a
  checkpoint; a full disk or refused write → KILLED with ``semiseg.error`` (resumable by a plain relaunch);
  a diverged loss or a bug → FAILED (``--retry-failed`` starts it over); bad input before the run starts →
  a FAILED run naming the error, when no checkpoint exists.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semiseg import catalog, distributed, precision, speed
from semiseg.cells import CellRecord
from semiseg.checkpoint import (CheckpointError, Weights, load_training, load_weights, rank_rng_state, save_weights,
                                set_rng_state)
from semiseg.config import (RunConfig, config_from_dict, config_hash, config_to_dict, effective_lr, flatten,
                            global_batch, short_hash)
from semiseg.data.sampling import build_data
from semiseg.download import cache_root
from semiseg.errors import ConfigError, UserError
from semiseg.evaluate import evaluate
from semiseg.protocol import describe_schedule
from semiseg.hooks import (Checkpointing, EpochCallback, EpochFn, Evaluate, Hook, MethodEpochEnd, MLflowLogging,
                           OfficialCurveAlert, PolyLR, Progress)
from semiseg.methods import METHODS
from semiseg.models import build_model, count_parameters
from semiseg.models.published import ensure_published
from semiseg.models.registry import NAMED_WEIGHTS, NamedWeights, weights_file
from semiseg.optim import build_optimizer
from semiseg.reference_match import References
from semiseg.sources import PUBLISHED_WEIGHTS
from semiseg.runfiles import (LOCK_HELD_ENV, RUN_FILE, CellLock, clean_torn_files, describe_holder, lock_holder,
                              read_json, waiting_lock, write_json)
from semiseg.tracking import (TOKEN_TAG, RunTracker, cell_tags, git_commit, record_failure, resolve_uri,
                              run_name)
from semiseg.trainer import Trainer, TrainState, optimizer_steps

#: Signals that stop training gracefully: SIGTERM (scancel, preemption) and the USR signals SLURM sends
#: before a time limit (``--signal``). Ctrl-C (SIGINT) still interrupts at once.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class AlreadyFinished(Exception):
    """The cell's run is FINISHED: nothing to do."""


class CellBusy(UserError):
    """Another process holds the cell's lock."""


@dataclass
class Outcome:
    """How :func:`run` ended without an exception: ``finished`` now, or ``already`` finished before."""

    status: str
    run_id: str | None
    state: TrainState | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """The run's device; on GPUs, data-parallel process ``local_rank`` takes GPU ``local_rank``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if name == "cuda":
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(name)


def run_dir_of(cfg: RunConfig) -> Path:
    return CellRecord(cfg).run_dir


def run_tags(cfg: RunConfig, extra_tags: dict[str, str] | None = None) -> dict[str, str]:
    """The tags of a run: its cell identity, code version and run folder, then ``extra_tags``."""
    return {**cell_tags(cfg), "semiseg.git_commit": git_commit(), "semiseg.run_dir": str(run_dir_of(cfg).resolve()),
            **(extra_tags or {})}


# --- named weights ------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    return cache_root()


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _EpochLine(Hook):
    """An epoch line with the ETA, at most one every ``every_s`` seconds (and the last epoch's)."""

    def __init__(self, label: str, every_s: float) -> None:
        self.label, self.every_s = label, every_s
        self.start = self.last = time.perf_counter()

    def after_epoch(self, trainer, result) -> None:
        epoch, epochs, now = trainer.state.epoch, trainer.cfg.train.epochs, time.perf_counter()
        if now - self.last >= self.every_s or epoch == epochs:
            self.last, spent = now, now - self.start
            print(f"{self.label} epoch {epoch}/{epochs}: loss {result.terms['loss']:.3f}, {spent:.0f} s, "
                  f"ETA {spent / epoch * (epochs - epoch):.0f} s", flush=True)


def make_named_weights(spec: NamedWeights, out: Path, data_root: Path) -> float:
    """Train ``spec``'s recipe (untracked, on ``spec.threads`` CPU threads whatever the caller uses, so the
    file is the same bit for bit for every caller) and save its ``spec.part`` as a weights file; returns the
    recipe's val mIoU."""
    run = {**spec.run, "data": {**spec.run["data"], "root": str(data_root)},
           "runtime": {**spec.run.get("runtime", {}), "threads": spec.threads, "device": "cpu", "num_workers": 0}}
    cfg = config_from_dict(run)
    caller_threads = torch.get_num_threads()
    try:
        trainer = build_trainer(cfg, tracked=False, hooks=[_EpochLine(spec.name, every_s=10)])
        trainer.train()
        miou = evaluate(trainer.model, trainer.data.val_loader, trainer.data.num_classes, trainer.device,
                        protocol=trainer.data.protocol).miou
        part = getattr(trainer.model, spec.part)
        save_weights(out, Weights(part.state_dict(), None, {"named": spec.name, "version": spec.version,
                                                            "val_miou": miou, "run": repr(spec.run)}))
    finally:
        torch.set_num_threads(caller_threads)
    return miou


def ensure_named_weights(name: str) -> Path:
    """The cached file of named weights ``name``, made first (under a lock, by whoever needs it first)."""
    spec = NAMED_WEIGHTS.get(name)
    root = cache_dir()
    path = root / "weights" / spec.file_name
    if path.is_file():
        return _checked_cache(path)
    with waiting_lock(path.with_name(path.name + ".lock")):
        if not path.is_file():  # no other process made it while we waited
            print(f"making the named weights {name!r} ({spec.description}) -> {path}", flush=True)
            miou = make_named_weights(spec, path, root / "data" / spec.run["data"]["dataset"])
            print(f"{name}: val mIoU {miou:.2f}; saved {path}", flush=True)
    return path


def _checked_cache(path: Path) -> Path:
    try:
        load_weights(path)
    except CheckpointError as exc:
        raise ConfigError(f"model.pretrained: the cached named weights {path} are damaged ({exc}); delete the file "
                          f"and they are made again") from None
    return path


def resolve_weights(cfg: RunConfig) -> Path | None:
    """The absolute weights file ``model.pretrained`` names (named weights are made, published ones fetched and
    verified, on first use), or None."""
    name = cfg.model.pretrained
    if not name:
        return None
    if name in PUBLISHED_WEIGHTS:
        return ensure_published(name)  # verified; its SHA-256 is logged as derived.pretrained_sha256
    return ensure_named_weights(name) if name in NAMED_WEIGHTS else weights_file(name)


# --- resume point and MLflow run ----------------------------------------------------------------------------

def load_resume_point(cfg: RunConfig, run_dir: Path, move_corrupt: bool = True) -> dict | None:
    """This cell's ``last.pth``, checked to be its own; None when there is none (or it was unreadable and
    moved aside)."""
    last = run_dir / "last.pth"
    if not last.exists():
        return None
    try:
        ckpt = load_training(last)
    except CheckpointError as exc:
        if not move_corrupt:
            return None
        aside = last.with_name(f"last.pth.corrupt-{int(time.time())}")
        os.replace(last, aside)
        print(f"warning: {exc}; moved it to {aside.name} and starting the cell over", flush=True)
        return None
    mine = config_hash(cfg)
    if ckpt["config_hash"] != mine or ckpt["experiment"] != cfg.runtime.experiment:
        raise ConfigError(f"{last} belongs to cell {ckpt['config_hash'][:10]} of experiment "
                          f"{ckpt['experiment']!r}, not to this run (cell {mine[:10]} of experiment "
                          f"{cfg.runtime.experiment!r}); move it away or use another runtime.output_dir")
    return ckpt


def restore(trainer: Trainer, ckpt: dict, path: Path) -> None:
    """Put the trainer where the checkpoint left it (weights, optimizer, method, counters, RNGs, history)."""
    distributed.unwrap(trainer.model).load_state_dict(ckpt["model"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    trainer.scaler.load_state_dict(ckpt["scaler"])
    trainer.method.load_state_dict(ckpt["method"])
    trainer.state = TrainState(**ckpt["state"])
    trainer.history = {int(k): v for k, v in ckpt["history"].items()}
    set_rng_state(rank_rng_state(ckpt["rng"], distributed.rank(), trainer.cfg.train.gpus))  # this rank's own
    within = f", iteration {trainer.state.epoch_iter} of epoch {trainer.state.epoch + 1}" \
        if trainer.state.epoch_iter else ""
    print(f"resumed from {path} at epoch {trainer.state.epoch}{within}", flush=True)


def open_run(tracker: RunTracker, run_dir: Path, tags: dict, known_run_id: str | None) -> tuple[set[int], bool]:
    """Create, adopt or reopen the cell's MLflow run; returns (epochs already logged, final metrics logged).

    Raises :class:`AlreadyFinished` when the run is FINISHED.
    """
    record = read_json(run_dir / RUN_FILE)
    run_id = known_run_id or record.get("run_id")
    run = tracker.get(run_id) if run_id else None
    if run_id and run is None:
        print(f"warning: MLflow run {run_id} of this cell is not in {tracker.uri} (experiment "
              f"{tracker.experiment!r}); a new run continues from the checkpoint", flush=True)
    if run is None and record.get("token"):  # killed between creating the run and recording it
        run = tracker.find(TOKEN_TAG, record["token"])
    if run is not None and run.info.status == "FINISHED":
        raise AlreadyFinished(run.info.run_id)
    if run is None:
        token = secrets.token_hex(8)
        write_json(run_dir / RUN_FILE, {"token": token})
        run_id = tracker.create(tags["mlflow.runName"], {**tags, TOKEN_TAG: token})
        logged, has_final = set(), False
    else:
        run_id = tracker.reopen(run.info.run_id, tags)
        logged, has_final = tracker.logged_steps("train/loss"), "best_miou" in run.data.metrics
    write_json(run_dir / RUN_FILE, {"run_id": run_id, "experiment": tracker.experiment,
                                    "tracking_uri": resolve_uri(tracker.uri), "hash": tags["semiseg.hash"]})
    return logged, has_final


# --- the assembly ---------------------------------------------------------------------------------------------

def build_trainer(cfg: RunConfig, extra_tags: dict[str, str] | None = None, callbacks: list[EpochFn] | None = None,
                  tracked: bool = True, hooks: list[Hook] | None = None) -> Trainer:
    """Everything for one run, resumed from its checkpoint when it has one.

    ``tracked`` runs get a run folder, checkpoints, an MLflow run and progress files; untracked ones (named
    weights) only the LR schedule and ``hooks``. Each callback gets ``(epoch, metrics, last_checkpoint_path)``
    after every epoch, once the MLflow metrics and the checkpoint of that epoch are written (a tuner's report).
    Raises :class:`AlreadyFinished` for a cell whose run is FINISHED.
    """
    catalog.check(cfg)
    if cfg.runtime.threads:
        torch.set_num_threads(cfg.runtime.threads)
    world = distributed.world_from_env(cfg.train.gpus) if tracked else distributed.World()  # named weights: 1 process
    device = pick_device(cfg.runtime.device, world.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    speed.configure_backends(cfg, device)
    weights = resolve_weights(cfg)  # before seeding: making named weights draws random numbers
    distributed.setup(world, device)
    seed_everything(cfg.seed)
    method_cls = METHODS.get(cfg.method)
    data = build_data(cfg, method_cls.streams, world.rank, world.size)  # data errors come before any MLflow run
    model = build_model(cfg, data.num_classes, weights=weights, **method_cls.model_kwargs).to(device)
    model = distributed.wrap(speed.prepare_model(model, cfg), device, cfg.train.sync_bn)
    method = method_cls(cfg, model)
    optimizer = build_optimizer(distributed.unwrap(model), cfg.optim, effective_lr(cfg), cfg.speed.optimizer_impl)
    all_hooks: list[Hook] = [PolyLR(), *(hooks or [])]
    run_dir = run_dir_of(cfg)
    if tracked:
        all_hooks += [Evaluate(), MethodEpochEnd(), Checkpointing(run_dir, save=world.is_main)]
    trainer = Trainer(cfg, model, method, data, optimizer, device, all_hooks, agree=distributed.any_rank)
    if world.is_main:
        print(precision.describe(cfg.train.amp, device), flush=True)
    if not tracked:
        return trainer

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = load_resume_point(cfg, run_dir, move_corrupt=world.is_main)
    if ckpt is not None:
        restore(trainer, ckpt, run_dir / "last.pth")
    if world.is_main:  # one MLflow run and one progress file per training run
        n_params, n_backbone = count_parameters(model), count_parameters(distributed.unwrap(model).backbone)
        tags = run_tags(cfg, {"semiseg.n_labeled": data.n_labeled, "mlflow.runName": run_name(cfg),
                              **(extra_tags or {})})
        tracker = RunTracker(cfg.runtime.tracking_uri, cfg.runtime.experiment)
        logged, has_final = open_run(tracker, run_dir, tags, ckpt["mlflow_run_id"] if ckpt else None)
        trainer.run_id = tracker.run_id
        tracker.log_params({**flatten(config_to_dict(cfg)), **derived_params(cfg, data, device, world, model, n_params,
                                                                     n_backbone, weights),
                           "derived.amp": trainer.amp, "derived.hardware": precision.hardware(device)})
        if ckpt is not None:
            tracker.set_tags({"semiseg.resumed_at_epoch": trainer.state.epoch})
        trainer.hooks += [MLflowLogging(tracker, run_dir, logged, has_final),
                          Progress(run_dir, f"{cfg.method}/{cfg.data.split}/s{cfg.seed} {short_hash(cfg)}")]
        trainer.hooks += [EpochCallback(fn, run_dir) for fn in callbacks or []]
        trainer.hooks += official_alert(cfg, tracker)
        print(f"{cfg.method} on {cfg.data.dataset}/{cfg.data.split}: {type(distributed.unwrap(model)).__name__} "
              f"{cfg.model.backbone} {n_params / 1e6:.2f}M parameters (encoder {n_backbone / 1e6:.2f}M, head "
              f"{(n_params - n_backbone) / 1e6:.2f}M), {trainer.steps_per_epoch} it/epoch, device {device}, "
              f"{world.size} process(es), lr {effective_lr(cfg):g}, run {trainer.run_id}", flush=True)
    return trainer


def official_alert(cfg: RunConfig, tracker) -> list[Hook]:
    """The :class:`OfficialCurveAlert` of a run with ``runtime.alert_behind`` (none without an official curve)."""
    if not cfg.runtime.alert_behind:
        return []
    official = References(cfg.runtime.tracking_uri).curve(cfg)
    if not official:
        print(f"runtime.alert_behind: no official curve of {cfg.method} / {cfg.data.dataset} / {cfg.data.split} / "
              f"{cfg.model.backbone} among the imported reference runs; no comparison", flush=True)
        return []
    return [OfficialCurveAlert(tracker, official)]


def derived_params(cfg: RunConfig, data, device, world, model, n_params: int, n_backbone: int,
                   weights: Path | None) -> dict:
    """The MLflow params computed for a run (not in its config)."""
    steps = optimizer_steps(data.iters_per_epoch, cfg.train.accum_steps)  # iterations = optimizer steps
    params = {"derived.iters_per_epoch": steps, "derived.total_iters": steps * cfg.train.epochs,
              "derived.n_labeled": data.n_labeled, "derived.n_unlabeled": data.n_unlabeled,
              "derived.parameters": n_params, "derived.parameters_backbone": n_backbone,
              "derived.parameters_head": n_params - n_backbone, "derived.device": str(device),
              "derived.global_batch": global_batch(cfg), "derived.effective_lr": effective_lr(cfg),
              "derived.eval_protocol": describe_schedule(data.protocol, cfg.train.epochs,
                                                         cfg.eval.center_crop_until_last),
              "derived.world_size": world.size,
              "derived.sync_bn": any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())}
    if weights is not None:
        params.update({"derived.pretrained_file": str(weights), "derived.pretrained_sha256": file_digest(weights)})
    return params


def record_setup_failure(cfg: RunConfig, extra_tags: dict[str, str] | None, exc: Exception) -> None:
    """Record a run that could not start (missing data, bad weights file, ...) as FAILED with its error, so
    the grid's status shows it. A cell with a checkpoint or a run of its own is left alone: it stays
    resumable once fixed."""
    record = CellRecord(cfg)
    if record.resumable() or os.environ.get("RANK", "0") != "0":  # rank 0 reports for all
        return
    run_dir = record.run_dir
    run_id = record_failure(cfg.runtime.tracking_uri, cfg.runtime.experiment, f"{type(exc).__name__}: {exc}",
                            run_tags(cfg, {"mlflow.runName": run_name(cfg), **(extra_tags or {})}))
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN_FILE, {"run_id": run_id})  # a backend sees the run reported itself


# --- the lifecycle ------------------------------------------------------------------------------------------

def run(cfg: RunConfig, extra_tags: dict[str, str] | None = None, callbacks: list[EpochFn] | None = None,
        lock_held: bool | None = None) -> Outcome:
    """Train (or resume, or leave alone when finished) the cell of ``cfg``; the one way every backend runs one.

    ``lock_held``: a launcher holds the cell lock for this process (default: the launcher's environment
    variable says so). A stop signal checkpoints and raises :class:`~semiseg.errors.StopRequested`; a
    failure is recorded and re-raised.
    """
    catalog.check(cfg)  # a config error, not a setup failure: nothing is recorded
    run_dir = run_dir_of(cfg)
    main = os.environ.get("RANK", "0") == "0"
    lock = CellLock(run_dir)
    if lock_held is None:
        lock_held = os.environ.get(LOCK_HELD_ENV) == "1"
    if main and not lock_held and not lock.acquire():
        holder = lock_holder(run_dir) or {}
        raise CellBusy(f"cell {short_hash(cfg)} of experiment {cfg.runtime.experiment!r} is being trained: "
                       f"{describe_holder(holder, lock.path)}")
    trainers: list[Trainer] = []
    previous = _install_stop_handlers(trainers)
    try:
        if main:
            for torn in clean_torn_files(run_dir) if run_dir.is_dir() else []:
                print(f"removed {torn.name}, left by an interrupted write", flush=True)
        finished = CellRecord(cfg).finished_run()
        if finished:
            print(f"cell {short_hash(cfg)} of experiment {cfg.runtime.experiment!r} is finished (MLflow run "
                  f"{finished}); nothing to do", flush=True)
            return Outcome("already", finished)
        try:
            trainers.append(build_trainer(cfg, extra_tags, callbacks))
        except AlreadyFinished as done:
            print(f"cell {short_hash(cfg)} is finished (MLflow run {done}); nothing to do", flush=True)
            return Outcome("already", str(done))
        except UserError as exc:
            record_setup_failure(cfg, extra_tags, exc)
            raise
        state = trainers[0].train()
        return Outcome("finished", trainers[0].run_id, state)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        distributed.teardown()
        lock.release()


def _install_stop_handlers(trainers: list[Trainer]) -> dict:
    """Stop signals ask the trainer for a graceful stop (before it exists they interrupt the setup).
    Only the main thread can install handlers (a Tune trial runs in a thread): elsewhere nothing is done."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum, frame):
        if not trainers:  # still setting up: nothing to save
            raise KeyboardInterrupt(f"signal {signum}")
        if trainers[0].stop_signal is None:
            print(f"signal {signum}: stopping after the current step, with a checkpoint", flush=True)
            trainers[0].request_stop(signum)

    return {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
