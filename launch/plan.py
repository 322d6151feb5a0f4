"""Planning: each cell's state from its cell record (:mod:`semiseg.cells`) plus the run folder's progress file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from semiseg.cells import survey
from semiseg.experiments.registry import Cell
from semiseg.runfiles import PROGRESS_FILE, read_json


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


def plan(cells: list[Cell]) -> list[PlannedCell]:
    """The state of every cell, from its :class:`semiseg.cells.CellRecord` (its newest MLflow run decides, a
    live lock means running). Each cell's config names its store, experiment and run folder (set once, by
    the expansion): a path-loaded or inherited experiment is looked up under the name its runs train in."""
    records = survey([cell.config for cell in cells])
    return [PlannedCell(cell, r.state, r.run.run_id if r.run else None, r.run_dir,
                        r.run.tags.get("semiseg.error", "") if r.run else "", est_hours=r.est_hours,
                        est_source="runs" if r.est_hours is not None else "",
                        status=r.run.status if r.run else "", holder=r.holder) for cell, r in zip(cells, records)]
