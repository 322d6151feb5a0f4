"""Command-line options shared by run_grid, status and tune (argparse ``parents=``), and the cell selection.

The same concept has the same option in every tool: ``--exp`` and the selection (``--methods``,
``--splits``, ``--seeds``/``--seed-list``, ``--set``) decide the cells and their hashes; ``--tracking-uri``
and ``--output-dir`` say where they are tracked and written; the Ray resources are per cell (a tune trial
is one cell's run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semiseg.experiments.registry import Cell, expand, list_experiments, load_experiment
from semiseg.config import tracking_uri_problem
from semiseg.errors import UserError
from semiseg.methods import METHODS
from semiseg.workspace import TRACKING_VARIABLE, default_tracking_uri, path


def selection_options() -> argparse.ArgumentParser:
    """``--exp``, the cell selection, ``--tracking-uri`` and ``--output-dir`` (a parent parser)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("cell selection (the same options select the same cells in every tool)")
    g.add_argument("--exp", required=True, help=f"experiment name or YAML path, e.g. --exp demo; one of: "
                                                f"{', '.join(list_experiments())}")
    g.add_argument("--methods", help="comma-separated methods instead of the grid's: a subset of them, or any "
                                     "registered method on the same recipe, e.g. --methods unimatch,fixmatch")
    g.add_argument("--splits", help="comma-separated subset of splits, e.g. --splits 1_16,1_4")
    seeds = g.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, help="seeds 0..N-1 for every cell, e.g. --seeds 3")
    seeds.add_argument("--seed-list", help="explicit seeds, e.g. --seed-list 0,42")
    g.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value in every cell (changes the cells' hashes), "
                        "e.g. --set train.epochs=2 (repeatable)")
    g.add_argument("--gpus", type=int, default=None,
                   help="re-fit every cell's recipe to N GPUs, keeping the paper's global batch with gradient "
                        "accumulation (the LR stays the paper's; --set optim.keep_global_batch=false scales the LR "
                        "instead), e.g. --gpus 1")
    g.add_argument("--tracking-uri", default=default_tracking_uri(),
                   help=f"MLflow tracking URI (default ${TRACKING_VARIABLE}, else mlflow.db in the workspace: "
                        f"{default_tracking_uri()}), e.g. --tracking-uri http://127.0.0.1:5000")
    g.add_argument("--output-dir", default=str(path("runs")),
                   help=f"folder for run folders (checkpoints, logs; tune: <output-dir>/tune/<study>; default "
                        f"{path('runs')} in the workspace), e.g. --output-dir /scratch/runs")
    return p


def renamed(old: str) -> type[argparse.Action]:
    """A store action whose old spelling ``old`` still works, with a note on stderr."""

    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            if option_string == old:
                print(f"warning: {old} is deprecated; use {self.option_strings[0]}", file=sys.stderr)
            setattr(namespace, self.dest, values)

    return Renamed


def ray_options(max_retries: int) -> argparse.ArgumentParser:
    """The Ray resources of a cell (``--backend ray`` of run_grid; every tune trial), a parent parser."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("Ray (run_grid --backend ray, tune)")
    g.add_argument("--ray-address", help="a running Ray cluster, e.g. --ray-address auto or 10.0.0.5:6379; "
                                         "default: a local runtime on 127.0.0.1")
    g.add_argument("--cpus-per-cell", "--cpus-per-trial", type=float, default=1.0, action=renamed("--cpus-per-trial"),
                   help="CPUs Ray reserves per cell, e.g. 2 (--cpus-per-trial: deprecated spelling)")
    g.add_argument("--gpus-per-cell", "--gpus-per-trial", type=float, default=None,
                   action=renamed("--gpus-per-trial"),
                   help="GPUs per cell (default: 1 when the cluster has GPUs, else 0); a fraction shares a GPU, "
                        "e.g. 0.5 runs two cells per GPU (--gpus-per-trial: deprecated spelling)")
    g.add_argument("--max-retries", "--max-failures", type=int, default=max_retries,
                   action=renamed("--max-failures"),
                   help=f"re-runs of a cell whose worker died or failed, each from its last checkpoint, e.g. "
                        f"{max_retries} (--max-failures: deprecated spelling)")
    return p


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


#: runtime keys a launcher sets from its own options (a ``--set`` of them would be overridden)
LAUNCHER_KEYS = {"runtime.tracking_uri": "--tracking-uri", "runtime.output_dir": "--output-dir",
                 "runtime.experiment": "--exp"}


def select_cells(args: argparse.Namespace) -> list[Cell]:
    """The cells that the selection options of :func:`selection_options` pick (each passed the catalog check)."""
    for item in args.sets:
        key = item.partition("=")[0].strip()
        if key in LAUNCHER_KEYS:
            raise UserError(f"--set {item}: {key} is the launcher's to set; use {LAUNCHER_KEYS[key]} instead")
    exp = load_experiment(args.exp)
    only = {}
    if _csv(args.methods):
        only["method"] = _csv(args.methods)
    if _csv(args.splits):
        only["split"] = _csv(args.splits)
    if args.seeds is not None:
        if args.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {args.seeds}")
        only["seed"] = list(range(args.seeds))
    elif args.seed_list:
        try:
            only["seed"] = [int(s) for s in _csv(args.seed_list)]
        except ValueError:
            raise UserError(f"--seed-list must be comma-separated integers, got {args.seed_list!r}") from None
    known = {"method": list(exp.grid.get("method", [])) + [m for m in METHODS.names()
                                                           if m not in exp.grid.get("method", [])],
             "split": list(exp.grid.get("split", []))}
    for axis, valid in known.items():
        bad = [v for v in only.get(axis, []) if v not in valid]
        if bad:
            raise UserError(f"--{axis}s: {', '.join(bad)} not valid for experiment {args.exp!r}; valid: "
                            f"{', '.join(map(str, valid))}")
    problem = tracking_uri_problem(args.tracking_uri)
    if problem:
        raise UserError(f"--tracking-uri {args.tracking_uri}: {problem}")
    output = Path(args.output_dir)
    blocker = next((p for p in (output, *output.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"--output-dir {output}: {blocker} is a file, not a folder")
    if args.gpus is not None and args.gpus < 1:
        raise UserError(f"--gpus must be at least 1, got {args.gpus}")
    runtime = {"tracking_uri": args.tracking_uri, "output_dir": str(output.resolve())}
    return expand(exp, only, args.sets, runtime, gpus=args.gpus)
