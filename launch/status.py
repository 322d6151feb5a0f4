"""Show the state of an experiment's cells: MLflow state, progress, best mIoU, SLURM job state, logs, errors.

Pass the same selection options as the launch (they decide the cells' hashes). Read-only: it writes nothing,
not even into the MLflow store; a SLURM job that ended without its run reporting it shows as failed here and
is recorded into MLflow by {sync} (or the next launch).

examples:
  {prog} --exp demo
  {prog} --exp demo --set train.epochs=2 --json
  {grid} --exp demo --status                 # the same table
"""

from __future__ import annotations

import argparse
import json
import sys

from semiseg.launch import slurm
from semiseg.launch.options import select_cells, selection_options
from semiseg.launch.plan import PlannedCell, plan
from semiseg.cli import prog, run_cli
from semiseg.launch.reference_view import official_gaps


def cell_status(p: PlannedCell, official: dict | None = None) -> dict:
    """One cell's status as a plain dict (the ``--json`` record); ``official``: the cell's entry of
    :func:`semiseg.launch.reference_view.official_gaps` (the gap to the official curve), if any."""
    prog = p.progress()
    c = p.cell.config
    log = p.job.get("log") or (str(p.run_dir / "train.log") if (p.run_dir / "train.log").exists() else "")
    return {"hash": p.cell.hash, "short": p.cell.short, "method": c.method, "dataset": c.data.dataset,
            "split": c.data.split, "backbone": c.model.backbone, "seed": c.seed, "state": p.state,
            "mlflow_status": p.status, "run_id": p.run_id, "epoch": prog.get("epoch", 0),
            "epochs": c.train.epochs, "best_miou": prog.get("best_miou"), "slurm_job": p.job.get("job_id", ""),
            "slurm_state": p.job.get("state", ""), "log": log, "error": p.error, "lock_holder": p.holder,
            "official": official or {}}


def format_status(planned: list[PlannedCell], gaps: dict[str, dict] | None = None) -> str:
    """The status table; ``gaps`` (from :func:`official_gaps`) adds the gap to the official curve."""
    rows = [cell_status(p, (gaps or {}).get(p.cell.hash)) for p in planned]
    lines = [f"{'hash':10}  {'method':12} {'split':8} {'seed':>4}  {'state':11} {'mlflow':9} {'epoch':>7} "
             f"{'best':>6} {'vs official':>12}  {'slurm':22} log"]
    for r in rows:
        best = f"{r['best_miou']:.2f}" if r["best_miou"] is not None and r["epoch"] else "-"
        job = f"{r['slurm_job']} {r['slurm_state']}".strip() or "-"
        gap = f"{r['official']['gap']:+.2f}@e{r['official']['epoch']}" if r["official"] else "-"
        lines.append(f"{r['short']:10}  {r['method']:12} {r['split']:8} {r['seed']:>4}  {r['state']:11} "
                     f"{r['mlflow_status'] or '-':9} {r['epoch']:>3}/{r['epochs']:<3} {best:>6} {gap:>12}  {job:22} "
                     f"{r['log'] or '-'}")
        if r["official"].get("alert"):
            lines.append(f"{'':12}alert: {r['official']['alert']}")
        if r["lock_holder"]:
            holder = r["lock_holder"]
            lines.append(f"{'':12}locked by pid {holder.get('pid', '?')} on {holder.get('host', '?')}: "
                         f"{holder.get('command', '?')}")
        if r["error"]:
            lines.append(f"{'':12}error: {r['error']}")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines.append(f"{len(rows)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if gaps:
        lines.append("vs official: val mIoU minus the official curve of the cell at the last epoch both have "
                     "(imported reference runs)")
    return "\n".join(lines)


def collect(args, record: bool = False) -> list[PlannedCell]:
    """Plan the selected cells and add their SLURM state (a no-op for cells never submitted to SLURM); with
    ``record``, jobs that ended without their run reporting it are recorded as failed runs in MLflow."""
    planned = plan(select_cells(args))
    return slurm.refresh(planned, record=record)


def build_parser() -> argparse.ArgumentParser:
    name = prog("status", "semiseg.launch.status")
    doc = __doc__.format(prog=name, grid=prog("grid", "semiseg.launch.run_grid"),
                         sync=prog("sync", "semiseg.launch.sync"))
    p = argparse.ArgumentParser(prog=name, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter, parents=[selection_options()])
    p.add_argument("--json", action="store_true", help="print the status as a JSON list of cells, e.g. --json")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    planned = collect(args)
    gaps = official_gaps(planned, args.tracking_uri)
    print(json.dumps([cell_status(p, gaps.get(p.cell.hash)) for p in planned], indent=1) if args.json
          else format_status(planned, gaps))
    return 0


def cli() -> int:
    """The ``semiseg-status`` console script."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
