"""Run a named experiment grid: plan its cells, skip finished ones, resume interrupted ones.

examples:
  {prog} --exp demo                       # run the demo grid locally
  {prog} --exp demo --dry-run             # show the plan and each cell's state
  {prog} --exp pascal_all --check         # are the data, split lists and weights there?
  {prog} --exp demo --dry-run --json      # the plan as JSON for scripts
  {prog} --exp demo --print-config --methods unimatch --splits 1_16 --seed-list 0   # a cell's full config
  {prog} --exp demo --methods unimatch --splits 1_16 --seeds 3
  {prog} --exp demo --set train.epochs=2 --max-parallel 2
  {prog} --exp demo --backend ray         # cells as Ray tasks on a local Ray runtime
  {prog} --exp demo --backend ray --ray-address auto --gpus-per-cell 0.5
  {prog} --exp demo --backend slurm --cluster local --dry-run   # show the sbatch files
  {prog} --exp demo --backend slurm --cluster-set time_min=60   # submit job arrays
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path


from semiseg.experiments.registry import Cell, load_experiment
from semiseg.launch import ray_backend, slurm
from semiseg.launch.check import check_cells
from semiseg.launch.local import run_local
from semiseg.launch.options import ray_options, select_cells, selection_options
from semiseg.launch.plan import PlannedCell, plan
from semiseg.launch.reference_view import FROM_OFFICIAL, add_official_estimates, official_gaps
from semiseg.launch.status import format_status
from semiseg.cli import EXIT_RESUMABLE, prog, require, run_cli
from semiseg.config import config_to_dict, effective_lr, global_batch
from semiseg.errors import UserError
from semiseg.tracking import get_or_create_experiment


MODULE, STATUS = "semiseg.launch.run_grid", "semiseg.launch.status"


def build_parser() -> argparse.ArgumentParser:
    name = prog("grid", MODULE)
    p = argparse.ArgumentParser(prog=name, description=__doc__.format(prog=name),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[selection_options(), ray_options(max_retries=3)])
    p.add_argument("--backend", default="local", choices=["local", "ray", "slurm"],
                   help="where cells run (local = processes on this machine, ray = Ray tasks, slurm = job arrays "
                        "via submitit), e.g. --backend slurm")
    p.add_argument("--dry-run", action="store_true", help="print the plan without running anything")
    p.add_argument("--status", action="store_true",
                   help=f"show each cell's state, progress, best mIoU, SLURM job and log (as {prog('status', STATUS)}; "
                        f"read-only)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved run config of each selected cell as YAML and exit, e.g. --print-config "
                        "--methods unimatch --splits 1_16 --seed-list 0")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the plan as a JSON list of cells")
    p.add_argument("--max-parallel", type=int, default=None,
                   help="cells running at once (local default 1; ray default: as many as the cluster's resources "
                        "allow; slurm: the job arrays' %%N, default the profile's array_parallelism), e.g. "
                        "--max-parallel 2")
    p.add_argument("--check", action="store_true",
                   help="only check that every selected cell's dataset root, split lists (sampled files) and "
                        "encoder weights are there and verified; exit 2 listing what is missing (the same check "
                        "runs before every launch and --dry-run)")
    p.add_argument("--full", action="store_true", help="the check looks at every listed file, not a sample")
    p.add_argument("--no-check", action="store_true", help="launch without checking data and weights first")
    p.add_argument("--retry-failed", action="store_true", help="also re-run cells whose last run FAILED")
    p.add_argument("--force", action="store_true",
                   help="re-run every selected cell from scratch into new MLflow runs (old run folders are kept "
                        "as <hash>.old-<time>)")
    g = p.add_argument_group("official reference runs (imported with: semiseg reference import)")
    g.add_argument("--speed-factor", type=float, default=1.0,
                   help="this device's speed relative to the GPUs of the official logs, for the cost of cells no "
                        "finished run of this store prices (2.0 = twice as fast), e.g. --speed-factor 1.5")
    g.add_argument("--alert-behind", type=float, default=None, metavar="POINTS",
                   help="tag a run (semiseg.alert) and stop it, KILLED and resumable, when its val mIoU is POINTS or "
                        "more below the official curve of its cell for --alert-patience evaluations in a row "
                        "(runtime.alert_behind), e.g. --alert-behind 2.0")
    g.add_argument("--alert-patience", type=int, default=None, metavar="N",
                   help="evaluations in a row behind before the alert (runtime.alert_patience, default 3)")
    g.add_argument("--alert-tag-only", action="store_true",
                   help="with --alert-behind: only tag the run, do not stop it (runtime.alert_stop=false)")
    slurm.add_arguments(p)
    return p


def alert_sets(args) -> list[str]:
    """The ``--set`` overrides of the alert options (runtime keys: they reach the training process, not the hash)."""
    if args.speed_factor <= 0:
        raise UserError(f"--speed-factor must be positive, got {args.speed_factor}")
    if args.alert_behind is None:
        if args.alert_patience is not None or args.alert_tag_only:
            raise UserError("--alert-patience / --alert-tag-only need --alert-behind POINTS")
        return []
    if args.alert_behind <= 0 or (args.alert_patience is not None and args.alert_patience < 1):
        raise UserError(f"--alert-behind must be positive and --alert-patience at least 1, got "
                        f"{args.alert_behind} / {args.alert_patience}")
    sets = [f"runtime.alert_behind={args.alert_behind}", f"runtime.alert_stop={not args.alert_tag_only}"]
    return sets + ([f"runtime.alert_patience={args.alert_patience}"] if args.alert_patience is not None else [])


def format_plan(planned: list[PlannedCell]) -> str:
    """One line per cell (hash, axes, GPUs x batch, the LR after linear scaling, cost estimate, state), totals."""
    lines = [f"{'hash':10}  {'method':17} {'dataset':14} {'split':8} {'backbone':12} {'seed':>4}  "
             f"{'gpus x bs x acc':>15} {'batch':>5}  {'lr':>9}  {'est.h':>6}  state"]
    scaled = False
    for p in planned:
        c = p.cell.config
        lr_used = effective_lr(c)
        is_scaled = lr_used != c.optim.lr
        scaled |= is_scaled
        lr = f"{lr_used:.3g}" + ("*" if is_scaled else " ")
        est = f"{p.est_hours:6.2f}" if p.est_hours is not None else f"{'-':>6}"
        est += "o" if p.est_source == FROM_OFFICIAL else " "
        shape = f"{c.train.gpus} x {c.train.batch_size} x {c.train.accum_steps}"
        lines.append(f"{p.cell.short:10}  {c.method:17} {c.data.dataset:14} {c.data.split:8} {c.model.backbone:12} "
                     f"{c.seed:>4}  {shape:>15} {global_batch(c):>5}  {lr:>9}  {est}  {p.state}")
    counts = {}
    for p in planned:
        counts[p.state] = counts.get(p.state, 0) + 1
    lines.append(f"{len(planned)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    todo = [p for p in planned if p.state in ("new", "interrupted", "failed")]
    known = [p.est_hours for p in todo if p.est_hours is not None]
    official = sum(p.est_source == FROM_OFFICIAL for p in todo if p.est_hours is not None)
    if todo and known:
        source = ("GPUs x hours of finished runs of the same recipe" if not official else
                  f"{official} of them marked o: from official logs, GPUs x epochs x (iterations/epoch x s/iteration + "
                  f"evaluation) / speed factor")
        lines.append(f"estimated cost of {len(known)} of the {len(todo)} unfinished cell(s): {sum(known):.2f} "
                     f"device-hours ({source})")
    elif todo:
        lines.append(f"no cost estimate for the {len(todo)} unfinished cell(s): no finished run of their recipes "
                     f"in this MLflow store yet, and no official reference runs for them (none available: import "
                     f"the official logs with {prog('reference', 'semiseg.reference')} import)")
    if scaled:
        lines.append("* LR scaled linearly from optim.reference_batch to the cell's global batch (gpus x bs x acc)")
    return "\n".join(lines)


def plan_json(planned: list[PlannedCell]) -> str:
    return json.dumps([{"hash": p.cell.hash, "short": p.cell.short, "method": p.cell.config.method,
                        "dataset": p.cell.config.data.dataset, "split": p.cell.config.data.split,
                        "backbone": p.cell.config.model.backbone, "seed": p.cell.config.seed,
                        "state": p.state, "run_id": p.run_id, "gpus": p.cell.config.train.gpus,
                        "batch_size": p.cell.config.train.batch_size,
                        "accum_steps": p.cell.config.train.accum_steps, "global_batch": global_batch(p.cell.config),
                        "lr": p.cell.config.optim.lr,
                        "effective_lr": effective_lr(p.cell.config), "est_hours": p.est_hours,
                        "est_source": p.est_source} for p in planned],
                      indent=1)


def format_configs(cells: list[Cell]) -> str:
    """Each cell's resolved run config as a YAML document headed by its hash and axes."""
    import yaml

    return "\n".join(f"--- # cell {c.short} " + ", ".join(f"{k}={v}" for k, v in c.axes.items()) + "\n"
                     + yaml.safe_dump(config_to_dict(c.config), sort_keys=False) for c in cells)


def select_todo(planned: list[PlannedCell], args) -> list[PlannedCell]:
    """The cells to (re)run: new and interrupted ones, failed ones with --retry-failed, all idle ones with --force."""
    if args.force:
        return [p for p in planned if p.state not in ("running", "queued")]
    wanted = {"new", "interrupted"} | ({"failed"} if args.retry_failed else set())
    return [p for p in planned if p.state in wanted]


def slurm_profile(args) -> dict:
    """The cluster profile with the experiment's and the command line's settings; ``--max-parallel`` is the
    job arrays' ``%N`` (it wins over an ``array_parallelism`` given with ``--cluster-set``)."""
    sets = args.cluster_sets + ([f"array_parallelism={args.max_parallel}"] if args.max_parallel else [])
    return slurm.load_profile(args.cluster, load_experiment(args.exp).slurm, sets)


def report_missing(cells, full: bool) -> bool:
    """Run the pre-launch check of ``cells``; print one line per problem. True when all is there."""
    problems = check_cells([p.cell for p in cells], full)
    for line in problems:
        print(f"missing: {line}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s): nothing was launched (--no-check launches anyway)", file=sys.stderr)
    return not problems


def _stop(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_parallel is not None and args.max_parallel < 1:
        raise UserError(f"--max-parallel must be at least 1, got {args.max_parallel}")
    if args.backend == "slurm":
        require("submitit", "slurm", "--backend slurm")
    elif args.backend == "ray":
        require("ray", "ray", "--backend ray")
    args.sets = args.sets + alert_sets(args)
    cells = select_cells(args)
    if args.print_config:
        print(format_configs(cells))
        return 0
    output_dir = Path(args.output_dir).resolve()
    exp = cells[0].config.runtime.experiment  # the name its runs train under (a path-loaded file: its stem)
    planned = plan(cells)
    add_official_estimates(planned, args.tracking_uri, args.speed_factor)
    if args.backend == "slurm" or args.status:  # a launch records dead jobs' failures; --status, --dry-run only read
        planned = slurm.refresh(planned, record=not (args.status or args.dry_run))
    if args.status:
        print(format_status(planned, official_gaps(planned, args.tracking_uri)))
        return 0
    todo = select_todo(planned, args)
    if args.check:
        if not report_missing(planned, args.full):
            return 2
        print(f"check passed: data, split lists and weights of {len(planned)} cell(s) are in place")
        return 0
    if args.dry_run:  # the plan (and its cost) first, then what the launch would miss
        print(plan_json(planned) if args.json else format_plan(planned))
        if args.backend == "slurm" and not args.json:
            print(slurm.describe(todo, slurm_profile(args), output_dir, exp))
        return 0 if args.no_check or report_missing(todo, args.full) else 2
    if not args.no_check and not report_missing(todo, args.full):
        return 2
    for p in todo:  # a forced or failed cell restarts from scratch in a new run; its old folder is kept
        if p.run_dir.exists() and (args.force or p.state == "failed"):
            p.run_dir.rename(p.run_dir.with_name(f"{p.run_dir.name}.{'old' if args.force else 'failed'}-"
                                                  f"{int(time.time())}"))
    print(format_plan(planned))
    if not todo:
        print("nothing to train: every selected cell is finished, failed (use --retry-failed) or running elsewhere")
        return 0
    resumed = sum(p.state == "interrupted" for p in todo)
    # the store and the experiment (with the file's description for the UI) are made once, here, not per cell
    get_or_create_experiment(args.tracking_uri, todo[0].cell.config.runtime.experiment,
                             load_experiment(args.exp).description)
    if args.backend == "slurm":
        slurm.check_available()
        n = slurm.submit(todo, slurm_profile(args), output_dir, exp)
        print(f"submitted {n} cell(s) ({resumed} to resume); follow them with: {prog('status', STATUS)} "
              f"--exp {args.exp} (with the same selection options)")
        return 0
    print(f"training {len(todo)} cell(s) ({resumed} resumed) on the {args.backend} backend"
          + (f" with up to {args.max_parallel} in parallel" if args.max_parallel else ""))
    signal.signal(signal.SIGTERM, _stop)  # a killed launcher stops its cells (resumable) instead of orphaning them
    if args.backend == "ray":
        result = ray_backend.run_ray(todo, exp, args)
    else:
        result = run_local(todo, exp, args.max_parallel or 1)
    stopped = f", {len(result.stopped)} stopped (KILLED, resumable)" if result.stopped else ""
    print(f"done: {len(result.finished)} finished, {len(result.failed)} failed, {len(result.skipped)} skipped{stopped}")
    if result.interrupted:
        return 130
    return 1 if result.failed else (result.stop_code or EXIT_RESUMABLE) if result.stopped else 0


def cli() -> int:
    """The ``semiseg-grid`` console script."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
