"""The one owner of a cell's state: every command and backend asks here, none re-derives it.

A cell is one run config. Its record follows one chain: identity (the config hash) → run folder
``<runtime.output_dir>/<runtime.experiment>/<short hash>`` → the cell lock in it → the MLflow run of
``runtime.experiment`` (``run.json`` names the one this folder recorded; the store's newest run of the hash
decides a plan) → the state:

- ``finished``: the run is FINISHED (nothing is run again);
- ``failed``: FAILED (``--retry-failed`` starts it over);
- ``running``: a live process holds the lock;
- ``interrupted``: RUNNING or KILLED with nobody holding the lock (a relaunch resumes it);
- ``new``: no run yet.

The experiment name is decided once, where the experiment file is expanded into configs
(:func:`semiseg.experiments.registry.expand` sets ``runtime.experiment``: the name for ``experiments/<name>``,
the file's stem for a path-loaded or tuned file), and read back from the config everywhere; the name a
user typed after ``--exp`` is never used to look runs up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from semiseg.config import RunConfig, config_hash, recipe_hash
from semiseg.runfiles import RUN_FILE, CellLock, lock_holder, read_json, run_dir_for
from semiseg.tracking import RECIPE_TAG, CellRun, run_status, search_cells

#: the MLflow statuses with which a run has reported its own end
ENDED = ("FINISHED", "FAILED", "KILLED")


@dataclass
class CellRecord:
    """Where one cell lives and what state it is in; built from its run config alone."""

    config: RunConfig
    run: CellRun | None = None  # the store's newest run of the cell, once :func:`survey` looked
    holder: dict = field(default_factory=dict)  # who holds the cell's lock (pid, host, command), if anyone
    est_hours: float | None = None  # device-hours (GPUs x wall hours) of finished runs of the same recipe

    @cached_property
    def hash(self) -> str:
        return config_hash(self.config)

    @property
    def short(self) -> str:
        return self.hash[:10]

    @property
    def experiment(self) -> str:
        return self.config.runtime.experiment

    @property
    def tracking_uri(self) -> str:
        return self.config.runtime.tracking_uri

    @cached_property
    def run_dir(self) -> Path:
        return run_dir_for(self.config.runtime.output_dir, self.experiment, self.short)

    def lock(self) -> CellLock:
        return CellLock(self.run_dir)

    def recorded_run_id(self) -> str | None:
        """The MLflow run the run folder recorded (``run.json``), if any."""
        return read_json(self.run_dir / RUN_FILE).get("run_id")

    def recorded_status(self) -> str | None:
        """The MLflow status of the recorded run (None: no run recorded, or the store lacks it)."""
        run_id = self.recorded_run_id()
        return run_status(self.tracking_uri, run_id) if run_id else None

    def finished_run(self) -> str | None:
        """The id of the recorded run when it is FINISHED (cheap: one store look-up, no data, no model)."""
        run_id = self.recorded_run_id()
        return run_id if run_id and run_status(self.tracking_uri, run_id) == "FINISHED" else None

    def reported_itself(self) -> bool:
        """True when the recorded run has recorded its own end (FINISHED, FAILED or KILLED)."""
        return self.recorded_status() in ENDED

    def resumable(self) -> bool:
        """True when the cell has a checkpoint or a run of its own (a setup failure must not overwrite it)."""
        return (self.run_dir / "last.pth").exists() or bool(self.recorded_run_id())

    @property
    def state(self) -> str:
        """new | finished | failed | running | interrupted (see the module's docstring); needs :func:`survey`."""
        if self.run is not None and self.run.state == "finished":
            return "finished"
        if self.holder:
            return "running"
        return self.run.state if self.run is not None else "new"


def survey(configs: list[RunConfig]) -> list[CellRecord]:
    """The records of ``configs`` with their newest MLflow runs, lock holders and cost estimates (one store
    query per experiment).

    A cell's cost estimate is the mean wall time of finished runs of the same recipe (same config but the
    seed, tag ``semiseg.recipe``) times its GPU count; cells of an unseen recipe have none.
    """
    records = [CellRecord(cfg) for cfg in configs]
    newest: dict[tuple[str, str], dict[str, CellRun]] = {}
    hours: dict[tuple[str, str], dict[str, list[float]]] = {}
    for key in {(r.tracking_uri, r.experiment) for r in records}:
        runs, spent = newest.setdefault(key, {}), hours.setdefault(key, {})
        for run in search_cells(*key):  # newest first
            runs.setdefault(run.cell_hash, run)
            if run.state == "finished" and run.hours:
                spent.setdefault(run.tags.get(RECIPE_TAG, ""), []).append(run.hours)
    for record in records:
        key = (record.tracking_uri, record.experiment)
        record.run = newest[key].get(record.hash)
        if record.state != "finished":
            record.holder = lock_holder(record.run_dir) or {}
        seen = hours[key].get(recipe_hash(record.config))
        record.est_hours = sum(seen) / len(seen) * record.config.train.gpus if seen else None
    return records
