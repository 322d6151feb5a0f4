"""Planning: each cell's state from one MLflow query plus the run folder's lock and progress files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from semiseg.experiments.registry import Cell
from semiseg.config import recipe_hash
from semiseg.runfiles import PROGRESS_FILE, lock_holder, read_json, run_dir_for
from semiseg.tracking import RECIPE_TAG, search_cells


@dataclass
class PlannedCell:
    cell: Cell
    state: str  # new | finished | interrupted | failed | running | queued (a SLURM job waits)
    run_id: str | None
    run_dir: Path
    error: str = ""
    est_hours: float | None = None  # device-hours (GPUs x wall hours) of finished runs of the same recipe
    #: where est_hours comes from: 'runs' (this store) or semiseg.launch.reference_view.FROM_OFFICIAL
    est_source: str = ""
    status: str = ""  # the MLflow status of the newest run ("" = none)
    job: dict = field(default_factory=dict)  # the backend's job record (SLURM: id, state, log), if any
    holder: dict = field(default_factory=dict)  # who holds the cell's lock (pid, host, command), if anyone

    def progress(self) -> dict:
        return read_json(self.run_dir / PROGRESS_FILE)


def plan(cells: list[Cell], tracking_uri: str, experiment: str, output_dir: Path) -> list[PlannedCell]:
    """The state of every cell: its newest MLflow run decides, a live lock means running.

    A cell's cost estimate is the mean wall time of finished runs of the same recipe (same config but the
    seed, tag ``semiseg.recipe``) times its GPU count; cells of an unseen recipe have none.
    """
    newest, durations = {}, {}
    for run in search_cells(tracking_uri, experiment):  # newest first
        newest.setdefault(run.cell_hash, run)
        if run.state == "finished" and run.hours:
            durations.setdefault(run.tags.get(RECIPE_TAG, ""), []).append(run.hours)
    planned = []
    for cell in cells:
        run = newest.get(cell.hash)
        run_dir = run_dir_for(output_dir, cell.config.runtime.experiment, cell.short)
        state = run.state if run else "new"
        holder = lock_holder(run_dir) if state != "finished" else None
        if holder:
            state = "running"
        error = run.tags.get("semiseg.error", "") if run else ""
        hours = durations.get(recipe_hash(cell.config)) if durations else None
        est = sum(hours) / len(hours) * cell.config.train.gpus if hours else None
        planned.append(PlannedCell(cell, state, run.run_id if run else None, run_dir, error, est_hours=est,
                                   est_source="runs" if est is not None else "",
                                   status=run.status if run else "", holder=holder or {}))
    return planned
