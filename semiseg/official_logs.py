"""Read the training logs the official repositories publish into typed records (no MLflow here).

Four formats are understood, told apart by what the log prints:

- ``unimatch-v1-2022``: UniMatch's first Pascal logs; the printed config has no ``ngpus``, ``save_path`` or
  ``labeled_id_path`` (split from the file name, the GPU count inferred from iterations per epoch and the
  split size, and recorded as inferred);
- ``unimatch-v1-2023``: UniMatch's later logs (``ngpus``, ``save_path``, ``labeled_id_path`` printed);
- ``unimatch-v2``: UniMatch V2 (``'model': 'dpt'``; student and EMA mIoU per evaluation);
- ``prevmatch``: PrevMatch (its ``prev:`` block; an ``iter time`` per logged iteration).

Each log is a printed config (a Python literal, read with :func:`ast.literal_eval`), then timestamped lines:
an epoch header, a loss line every ``iters_per_epoch // 8`` iterations, per-class IoU and the mean IoU of
every evaluation. A hand-written line reader is needed because the logs are free text; every value it cannot
read is named in :attr:`OfficialLog.problems` (or :class:`LogError` when nothing usable is left), never guessed.
"""

from __future__ import annotations

import ast
import math
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Callable

FORMATS = ("unimatch-v1-2022", "unimatch-v1-2023", "unimatch-v2", "prevmatch")
#: Per format: the method folder of ``save_path`` → this project's method name.
METHODS = {
    "unimatch-v1-2023": {"unimatch": "unimatch", "supervised": "supervised", "fixmatch": "fixmatch"},
    "unimatch-v2": {"unimatch_v2": "unimatch_v2", "fixmatch": "fixmatch_v2", "supervised": "supervised",
                    "unimatch_v1": "unimatch"},
    "prevmatch": {"prevmatch": "prevmatch"},
}
#: The loader logs every ``len(loader) // LOG_EVERY_DIVISOR`` iterations in every official repository.
LOG_EVERY_DIVISOR = 8
GPU_CANDIDATES = (1, 2, 4, 8, 16)

_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]\[\s*\w+\] (.*)$")
_EPOCH = re.compile(r"=+> Epoch: (\d+)")
_ITERS = re.compile(r"Iters: (\d+),")
_MEAN = re.compile(r"Evaluation (\w+) \*+ >>>> (?:MeanIoU|meanIOU): ([\d.]+)(?:, EMA: ([\d.]+))?")
_CLASS = re.compile(r"Class \[(\d+) ([^\]]+)\] IoU: ([\d.]+)(?:, EMA: ([\d.]+))?")
_STOP_MARKS = ("Killed", "CANCELLED", "Traceback", "Error", "error:")
_SPLIT_FILE = re.compile(r"^(1_\d+|\d+)(?:-run(\d+))?")


class LogError(ValueError):
    """A log from which no reference run can be made; the message names the file and what is missing."""


@dataclass
class Evaluation:
    """One evaluation (after epoch ``epoch``, 0-based as the logs print it)."""

    epoch: int
    miou: float  # the student (the only model outside V2)
    miou_ema: float | None
    per_class: dict[str, float]
    per_class_ema: dict[str, float]
    protocol: str  # original | sliding_window | center_crop, as printed


@dataclass
class OfficialLog:
    """What one official training log says, mapped to this project's names."""

    source: str
    format: str
    config: dict[str, Any]  # the printed official config, as printed
    method: str
    dataset: str
    split: str
    backbone: str
    recipe: dict[str, Any]  # this project's config keys (data.crop_size, train.epochs, optim.lr, ...)
    gpus: int | None
    gpus_inferred: bool
    log_interval: int | None  # iterations between two loss lines
    iters_per_epoch: int | None  # exact (computed from the split size and checked against the log), else None
    seconds_per_iter: float | None  # median over epochs, from the loss lines' timestamps
    epoch_seconds: dict[int, float]  # wall time of each completed epoch (header to next header / evaluation)
    eval_seconds: float | None  # median time of one evaluation (end of the last iteration to the mIoU line)
    evaluations: list[Evaluation]
    ending: str  # complete | truncated | interrupted
    started: datetime  # the first and last timestamps of the log
    ended: datetime
    run: int | None = None  # run1/run2/... of repeated logs
    notes: list[str] = field(default_factory=list)  # values inferred, and how
    problems: list[str] = field(default_factory=list)  # values that could not be read (left unset)

    @property
    def epochs(self) -> int:
        return int(self.recipe["train.epochs"])

    @property
    def has_ema(self) -> bool:
        return any(e.miou_ema is not None for e in self.evaluations)

    def curve(self, model: str = "reported") -> list[tuple[int, float]]:
        """(epoch, mIoU) of ``student``, ``ema`` or ``reported`` (EMA where logged, as the V2 README numbers)."""
        use_ema = model == "ema" or (model == "reported" and self.has_ema)
        points = [(e.epoch, e.miou_ema if use_ema else e.miou) for e in self.evaluations]
        return [(ep, v) for ep, v in points if v is not None]

    def best(self, model: str = "reported") -> Evaluation | None:
        curve = dict(self.curve(model))
        if not curve:
            return None
        epoch = max(curve, key=lambda ep: (curve[ep], -ep))
        return next(e for e in self.evaluations if e.epoch == epoch)

    @property
    def gpu_hours_per_epoch(self) -> float | None:
        """GPUs x (iterations per epoch x seconds per iteration + evaluation time) / 3600 (None when unknown)."""
        iters = self.iters_per_epoch or (self.log_interval * LOG_EVERY_DIVISOR if self.log_interval else None)
        if not (self.gpus and iters and self.seconds_per_iter and self.eval_seconds is not None):
            return None
        return self.gpus * (iters * self.seconds_per_iter + self.eval_seconds) / 3600.0


def detect_format(config: dict[str, Any], text: str) -> str:
    if "prev" in config:
        return "prevmatch"
    if config.get("model") == "dpt" or ", EMA: " in text:
        return "unimatch-v2"
    return "unimatch-v1-2023" if "ngpus" in config else "unimatch-v1-2022"


def _printed_config(lines: list[str], source: str) -> tuple[dict[str, Any], int]:
    """The first printed config dict and the index of the line after it."""
    for start, line in enumerate(lines):
        match = _LINE.match(line)
        if match and match.group(3).startswith("{"):
            body = [match.group(3)]
            for end in range(start + 1, len(lines)):
                if body[-1].rstrip().endswith("}"):
                    break
                body.append(lines[end])
            try:
                value = ast.literal_eval("\n".join(body))
            except (ValueError, SyntaxError) as exc:
                raise LogError(f"{source}: the printed config (line {start + 1}) is not a readable dict: "
                               f"{exc}") from None
            if isinstance(value, dict):
                return value, start + len(body)
    raise LogError(f"{source}: no printed config found (a line '[date time][ INFO] {{...}}' with the run's "
                   f"settings); is this an official training log?")


def _split_of(config: dict[str, Any], source: str, notes: list[str]) -> tuple[str | None, int | None]:
    path = PurePosixPath(source)
    run_match = _SPLIT_FILE.match(path.name)
    run = int(run_match.group(2)) if run_match and run_match.group(2) else None
    labeled = config.get("labeled_id_path")
    if labeled:
        parts = PurePosixPath(str(labeled)).parts
        return (parts[-2] if len(parts) >= 2 else None), run
    if not run_match:
        return None, run
    split = run_match.group(1)
    if any("u2pl" in part.lower() for part in path.parts):
        split = f"u2pl_{split}"
    notes.append(f"split {split!r} read from the file name (the log prints no labeled_id_path)")
    return split, run


def _method_of(fmt: str, config: dict[str, Any], notes: list[str]) -> tuple[str | None, str]:
    """(project method, why): from ``save_path``'s method folder, or the only method of the 2022 format."""
    save = config.get("save_path")
    if fmt == "unimatch-v1-2022" and not save:
        notes.append("method unimatch: the 2022 format is the UniMatch repository's own")
        return "unimatch", ""
    parts = PurePosixPath(str(save or "")).parts
    folder = parts[2] if len(parts) >= 5 else None
    if folder is None:
        return None, f"save_path {save!r} does not name the method (expected exp/<dataset>/<method>/<encoder>/<split>)"
    method = METHODS[fmt].get(folder)
    if method is None:
        return None, (f"method folder {folder!r} of save_path {save!r} has no counterpart in this project "
                      f"(known for {fmt}: {', '.join(sorted(METHODS[fmt]))})")
    return method, ""


def _recipe(config: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The printed settings under this project's config keys (those a cell's recipe is matched on, and cost)."""
    recipe: dict[str, Any] = {"data.dataset": config["dataset"], "data.crop_size": int(config["crop_size"]),
                              "model.backbone": config["backbone"], "train.epochs": int(config["epochs"]),
                              "train.batch_size": int(config["batch_size"]), "optim.lr": float(config["lr"])}
    if "lr_multi" in config:
        recipe["optim.lr_multi"] = float(config["lr_multi"])
    if "conf_thresh" in config:
        recipe["loss.conf_thresh"] = float(config["conf_thresh"])
    criterion = config.get("criterion") or {}
    if criterion.get("name") == "OHEM":
        kwargs = criterion.get("kwargs", {})
        recipe.update({"loss.criterion": "ohem", "loss.ohem_thresh": float(kwargs.get("thresh", 0.7)),
                       "loss.ohem_min_kept": int(kwargs.get("min_kept", 100000))})
    elif criterion.get("name") == "CELoss":
        recipe["loss.criterion"] = "ce"
    if "dilations" in config:
        recipe["model.aspp_dilations"] = list(config["dilations"])
    stride = config.get("replace_stride_with_dilation")
    if stride is not None:
        recipe["model.output_stride"] = 8 if list(stride) == [False, True, True] else 16
    if config.get("amp"):
        recipe["train.amp"] = "fp16"
    if "lock_backbone" in config:
        recipe["model.lock_backbone"] = bool(config["lock_backbone"])
    return recipe


def _time(stamp: str, millis: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(microsecond=int(millis) * 1000)


def infer_gpus(stream_size: int, batch_size: int, log_interval: int) -> list[int]:
    """GPU counts whose DistributedSampler (padded to ceil(n / gpus) per rank) with ``drop_last`` batches give a
    loader of length L with ``L // 8 == log_interval``."""
    return [n for n in GPU_CANDIDATES
            if (math.ceil(stream_size / n) // batch_size) // LOG_EVERY_DIVISOR == log_interval]


def parse_log(text: str, source: str, stream_size: Callable[[str, str, str], int | None] | None = None,
              method: str | None = None) -> OfficialLog:
    """Parse one official log. ``stream_size(dataset, split, method)`` gives the number of images of the stream an
    epoch iterates (the unlabeled list for semi-supervised methods), or None; it makes iterations per epoch exact
    and infers a missing GPU count. ``method`` overrides the method read from the log."""
    lines = text.splitlines()
    config, body_start = _printed_config(lines, source)
    missing = [k for k in ("dataset", "backbone", "crop_size", "epochs", "batch_size", "lr") if k not in config]
    if missing:
        raise LogError(f"{source}: the printed config lacks {', '.join(missing)}; it has {', '.join(sorted(config))}")
    fmt = detect_format(config, text)
    notes: list[str] = []
    problems: list[str] = []
    split, run = _split_of(config, source, notes)
    if split is None:
        raise LogError(f"{source}: no split: the log prints no labeled_id_path and the file name does not start "
                       f"with one (e.g. 183-run1.log, 1_16.log)")
    if method is None:
        method, why = _method_of(fmt, config, notes)
        if method is None:
            raise LogError(f"{source}: {why}")
    stamps = [_LINE.match(line) for line in lines]
    stamps = [_time(m.group(1), m.group(2)) for m in stamps if m]
    evaluations, epoch_seconds, iter_rates, eval_times, ending, extra = _read_events(lines[body_start:])
    notes += extra
    if not evaluations:
        raise LogError(f"{source}: no evaluation ('***** Evaluation ... MeanIoU: x') in the log")
    interval = _log_interval(lines[body_start:])
    recipe = _recipe(config, fmt)
    recipe["data.split"] = split
    gpus = config.get("ngpus")
    gpus_inferred = False
    size = stream_size(config["dataset"], split, method) if stream_size else None
    if gpus is None:
        if size is None or interval is None:
            problems.append("GPU count: not printed, and " + ("no split size is known for "
                            f"{config['dataset']}/{split}" if size is None else "no loss line to count iterations"))
        else:
            found = infer_gpus(size, int(config["batch_size"]), interval)
            if len(found) == 1:
                gpus, gpus_inferred = found[0], True
                notes.append(f"GPU count {gpus} inferred: {size} images / {gpus} GPUs / batch {config['batch_size']} "
                             f"gives {interval} iterations between loss lines, as logged")
            else:
                problems.append(f"GPU count: not printed; {size} images at batch {config['batch_size']} fit a loss "
                                f"line every {interval} iterations with " + (f"{found} GPUs (ambiguous)" if found
                                                                              else "no GPU count in "
                                                                              f"{list(GPU_CANDIDATES)}"))
    iters = None
    if gpus and size and interval is not None:
        exact = math.ceil(size / gpus) // int(config["batch_size"])
        if exact // LOG_EVERY_DIVISOR == interval:
            iters = exact
        else:
            problems.append(f"iterations per epoch: {size} images / {gpus} GPUs / batch {config['batch_size']} = "
                            f"{exact}, which does not match a loss line every {interval} iterations")
    elif interval is not None:
        notes.append(f"iterations per epoch between {interval * 8} and {interval * 8 + 7} (a loss line every "
                     f"{interval}); no split size to make it exact")
    if gpus:
        recipe["train.gpus"] = int(gpus)
    rate = statistics.median(iter_rates) if iter_rates else None
    known = iters or (interval * LOG_EVERY_DIVISOR if interval else None)
    # the last loss line is at iteration 8 x interval, not the epoch's last: the remaining ones are not evaluation
    evals = [s - max(known - 1 - last, 0) * rate for last, s in eval_times] if rate and known else []
    if len(evaluations) >= int(config["epochs"]):
        ending = "complete"  # a stop message after the last evaluation (a job cancelled at its end) is only noted
    elif ending == "complete":
        ending = "truncated"
    return OfficialLog(source=source, format=fmt, config=config, method=method, dataset=config["dataset"],
                       split=split, backbone=str(config["backbone"]), recipe=recipe, gpus=gpus,
                       gpus_inferred=gpus_inferred, log_interval=interval, iters_per_epoch=iters,
                       seconds_per_iter=rate, epoch_seconds=epoch_seconds,
                       eval_seconds=max(statistics.median(evals), 0.0) if evals else None,
                       evaluations=evaluations, ending=ending, started=stamps[0], ended=stamps[-1], run=run,
                       notes=notes, problems=problems)


def _log_interval(lines: list[str]) -> int | None:
    """Iterations between two loss lines (the second logged iteration of any epoch)."""
    previous = None
    for line in lines:
        if _EPOCH.search(line):
            previous = None
            continue
        match = _ITERS.search(line)
        if match:
            it = int(match.group(1))
            if previous == 0 and it > 0:
                return it
            previous = it
    return None


def _read_events(lines: list[str]):
    """Evaluations, per-epoch wall time, seconds/iteration per epoch, evaluation times, ending, notes."""
    evaluations: dict[int, Evaluation] = {}
    headers: dict[int, datetime] = {}
    epoch_seconds: dict[int, float] = {}
    iter_rates: list[float] = []
    eval_times: list[tuple[int, float]] = []  # (last logged iteration, seconds from it to the mIoU line)
    per_class: dict[str, float] = {}
    per_class_ema: dict[str, float] = {}
    epoch: int | None = None
    iters: list[tuple[int, datetime]] = []
    ending, notes = "complete", []

    def close_iters() -> None:
        if len(iters) >= 2 and epoch not in (None, 0):  # epoch 0 includes warm-up (cudnn, workers)
            (i0, t0), (i1, t1) = iters[0], iters[-1]
            if i1 > i0:
                iter_rates.append((t1 - t0).total_seconds() / (i1 - i0))

    for line in lines:
        match = _LINE.match(line)
        if not match:
            if line.strip() and any(mark in line for mark in _STOP_MARKS) and epoch is not None:
                ending = "interrupted"
                notes.append(f"stopped: {line.strip()[:160]}")
            continue
        now, message = _time(match.group(1), match.group(2)), match.group(3)
        if message.startswith("{"):  # a second printed config: the run was restarted (resumed)
            notes.append(f"restarted after epoch {epoch}")
            continue
        head = _EPOCH.search(message)
        if head:
            close_iters()
            new = int(head.group(1))
            if epoch is not None and epoch in headers and new == epoch + 1:
                epoch_seconds[epoch] = (now - headers[epoch]).total_seconds()
            epoch, iters = new, []
            headers[epoch] = now
            per_class, per_class_ema = {}, {}
            continue
        it = _ITERS.search(message)
        if it and epoch is not None:
            iters.append((int(it.group(1)), now))
            continue
        cls = _CLASS.search(message)
        if cls:
            per_class[cls.group(2)] = float(cls.group(3))
            if cls.group(4) is not None:
                per_class_ema[cls.group(2)] = float(cls.group(4))
            continue
        mean = _MEAN.search(message)
        if mean and epoch is not None:
            ema = float(mean.group(3)) if mean.group(3) is not None else None
            evaluations[epoch] = Evaluation(epoch, float(mean.group(2)), ema, per_class, per_class_ema, mean.group(1))
            if iters:
                eval_times.append((iters[-1][0], (now - iters[-1][1]).total_seconds()))
            close_iters()
            iters = []
            if epoch + 1 not in headers:  # the last epoch ends at its evaluation
                epoch_seconds[epoch] = (now - headers[epoch]).total_seconds()
    if epoch is not None and epoch not in evaluations and ending == "complete":
        ending = "truncated"
        notes.append(f"epoch {epoch} started but never evaluated")
    epoch_seconds = {ep: s for ep, s in epoch_seconds.items() if ep in evaluations}
    return [evaluations[ep] for ep in sorted(evaluations)], epoch_seconds, iter_rates, eval_times, ending, notes
