"""Reference runs (imported official logs) for a cell: matching, the official curve, the gap, the cost estimate.

A reference run matches a cell when its identity tags (method, dataset, split, encoder) are the cell's and the
recipe values it recorded (:data:`MATCHED_KEYS`) equal the cell's config: an ablation log of another crop,
schedule, threshold or LR never stands for the cell. Several matching logs (run1..run3) are averaged per epoch.
"""

from __future__ import annotations

import math
import statistics

from semiseg.tracking import REPORTED_MODEL_TAG, TAG_PREFIX, CellRun, metric_history, reference_runs

#: Recipe values a reference run must share with a cell (the config keys the importer records).
MATCHED_KEYS = ("data.crop_size", "train.epochs", "loss.conf_thresh", "optim.lr")
#: Param of a reference run: its GPU-hours per epoch, GPUs x (iterations/epoch x s/iteration + evaluation) / 3600.
GPU_H_PER_EPOCH = "reference.gpu_hours_per_epoch"


def cell_key(cfg) -> tuple[dict[str, str], dict[str, float]]:
    """(identity tags, recipe values of :data:`MATCHED_KEYS`) of config ``cfg``: what a reference run must match."""
    identity = {"method": cfg.method, "dataset": cfg.data.dataset, "split": cfg.data.split,
                "backbone": cfg.model.backbone}
    recipe = {}
    for key in MATCHED_KEYS:
        section, name = key.split(".")
        recipe[key] = getattr(getattr(cfg, section), name)
    return identity, recipe


def matches(run: CellRun, identity: dict, recipe: dict) -> bool:
    """True when reference ``run`` has the ``identity`` tags and the ``recipe`` values it recorded agree (a value
    missing on either side does not count against it)."""
    if any(run.tags.get(TAG_PREFIX + k) != str(v) for k, v in identity.items()):
        return False
    for key, value in recipe.items():
        recorded = run.params.get(key)
        if recorded is not None and value is not None and value == value and \
                not math.isclose(float(recorded), float(value), rel_tol=1e-6):
            return False
    return True


class References:
    """The reference runs of one store, read once; curves are read on demand and cached."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.runs = reference_runs(uri)
        self._curves: dict[tuple[str, str], dict[int, float]] = {}

    def __bool__(self) -> bool:
        return bool(self.runs)

    def for_config(self, cfg) -> list[CellRun]:
        return self.matching(*cell_key(cfg))

    def matching(self, identity: dict, recipe: dict) -> list[CellRun]:
        return [run for run in self.runs if matches(run, identity, recipe)]

    def curve(self, cfg) -> dict[int, float]:
        """epoch (0-based, as MLflow steps) → the mean official val mIoU of the matching logs at that epoch: of the
        model the cell reports (``eval.report_model``; logs with an EMA teacher record both)."""
        runs = self.for_config(cfg)
        student = cfg.eval.report_model == "student" and any(r.tags.get(REPORTED_MODEL_TAG) == "ema" for r in runs)
        return self.mean_curve(runs, "val/miou_student" if student else "val/miou")

    def mean_curve(self, runs: list[CellRun], key: str = "val/miou") -> dict[int, float]:
        """epoch → the mean of ``runs``' metric ``key`` at that epoch."""
        values: dict[int, list[float]] = {}
        for run in runs:
            if (run.run_id, key) not in self._curves:
                self._curves[run.run_id, key] = dict(metric_history(self.uri, run.run_id, key))
            for epoch, value in self._curves[run.run_id, key].items():
                values.setdefault(epoch, []).append(value)
        return {epoch: sum(v) / len(v) for epoch, v in sorted(values.items())}

    @staticmethod
    def best_of(runs: list[CellRun]) -> tuple[float, int] | None:
        """(mean best val mIoU of ``runs``, how many), or None."""
        bests = [run.metrics["best_miou"] for run in runs if "best_miou" in run.metrics]
        return (sum(bests) / len(bests), len(bests)) if bests else None

    def gpu_hours(self, cfg, speed: float = 1.0) -> float | None:
        """Static cost of the cell from its matching logs: the median GPU-hours per epoch x the cell's epochs,
        divided by the device speed factor (2.0 = a device twice as fast as the logs')."""
        per_epoch = [float(run.params[GPU_H_PER_EPOCH]) for run in self.for_config(cfg) if GPU_H_PER_EPOCH in
                     run.params]
        return statistics.median(per_epoch) * cfg.train.epochs / speed if per_epoch else None


def gap(curve: dict[int, float], official: dict[int, float]) -> tuple[int, float] | None:
    """(epoch, run - official) at the last epoch both curves have, or None."""
    common = sorted(set(curve) & set(official))
    return (common[-1], curve[common[-1]] - official[common[-1]]) if common else None


