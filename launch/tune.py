"""Search hyperparameters of a named experiment with Ray Tune; write the best values as an experiment.

Every trial is one training run of one of the experiment's cells with sampled config values; a cell with
train.gpus: N trains as N ranks on N GPUs the trial reserves (--gpus 1 re-fits it to one). Each trial
reports its validation mIoU after every epoch (ASHA stops weak trials early), checkpoints every epoch
(an interrupted study continues with --resume), and is an MLflow run nested under the study's parent
run (MLflow experiment <exp>-tune). The search space comes from --param options or, without them, from
the experiment's ``search:`` block. Spaces (--param KEY=SPEC):
  KEY=LOW:HIGH            uniform             e.g. --param loss.conf_thresh=0.80:0.99
  KEY=log:LOW:HIGH        log-uniform         e.g. --param optim.lr=log:1e-4:1e-2
  KEY=int:LOW:HIGH        integer, inclusive  e.g. --param train.batch_size=int:2:8
  KEY=choice:A,B,...      one value at random e.g. --param loss.criterion=choice:ce,ohem
  KEY=grid:A,B,...        every value         e.g. --param loss.conf_thresh=grid:0.9,0.95
Grid values are crossed with the experiment's selected cells and repeated --num-samples times.

The best values are written as an experiment inheriting the tuned one, by default
experiments/<exp>_tuned.yaml in the workspace (so --exp <exp>_tuned finds it).

examples:
  {prog} --exp demo_thresholds --scheduler fifo          # the YAML's threshold grid
  {prog} --exp demo --methods unimatch --splits 1_16 --param loss.conf_thresh=0.80:0.99 \\
      --num-samples 8 --scheduler asha --set train.epochs=6
  {prog} --exp demo_thresholds --study thr1 --resume      # continue an interrupted study
  {grid} --exp demo_thresholds_tuned                      # train with the best values
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import yaml


from semiseg.experiments.registry import Cell, load_experiment
from semiseg.experiments.search import SearchDim, parse_param, validate
from semiseg.launch import ray_backend
from semiseg.launch.gang import Gang
from semiseg.launch.options import ray_options, renamed, select_cells, selection_options
from semiseg.cli import prog, require, run_cli
from semiseg.config import RunConfig, apply_overrides, config_from_dict, config_to_dict, save_config, set_dotted
from semiseg.errors import UserError
from semiseg.runfiles import PROGRESS_FILE, read_json
from semiseg.tracking import RunTracker, child_runs, find_tagged_run, resolve_uri
from semiseg.workspace import experiments_dir

METRIC = "val/miou"  # reported after every evaluated epoch; ASHA compares trials on it
BEST = "val/best_miou"  # what "best trial" means


GRID = "semiseg.launch.run_grid"


def build_parser() -> argparse.ArgumentParser:
    name = prog("tune", "semiseg.launch.tune")
    p = argparse.ArgumentParser(prog=name, description=__doc__.format(prog=name, grid=prog("grid", GRID)),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[selection_options(), ray_options(max_retries=2)])
    p.add_argument("--param", dest="params", action="append", default=[], metavar="KEY=SPEC",
                   help="a searched config key (repeatable; replaces the experiment's search: block), "
                        "e.g. --param loss.conf_thresh=0.80:0.99")
    p.add_argument("--num-samples", type=int, default=1,
                   help="samples of the space (grids are repeated this many times), e.g. --num-samples 8")
    p.add_argument("--scheduler", choices=["asha", "fifo"], default="asha",
                   help="asha stops weak trials early at epochs grace*factor^k; fifo runs every trial to the end, "
                        "e.g. --scheduler fifo")
    p.add_argument("--grace-period", type=int, default=1, help="asha: epochs before a trial may be stopped, e.g. 2")
    p.add_argument("--reduction-factor", type=float, default=2.0,
                   help="asha: keep the top 1/factor of trials at each rung, e.g. 3")
    p.add_argument("--study", help="study name (default <exp>-<date>-<time>), e.g. --study thr1")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted study named by --study (finished trials are kept), "
                        "e.g. --study thr1 --resume")
    p.add_argument("--max-parallel", "--max-concurrent", type=int, default=0, action=renamed("--max-concurrent"),
                   help="trials running at once (0 = as many as resources allow), e.g. --max-parallel 2 "
                        "(--max-concurrent: deprecated spelling)")
    p.add_argument("--mlflow-experiment", help="MLflow experiment of the study (default <exp>-tune), e.g. thresholds")
    p.add_argument("--best-out", help="where to write the best values as an experiment YAML (default "
                                      "experiments/<exp>_tuned.yaml in the workspace), e.g. --best-out best.yaml")
    return p


def tune_space(dim: SearchDim):
    """The Ray Tune object of a search dimension."""
    from ray import tune

    values = list(dim.values)
    if dim.kind == "grid":
        return tune.grid_search(values)
    if dim.kind == "choice":
        return tune.choice(values)
    if dim.kind == "randint":
        return tune.randint(values[0], values[1] + 1)  # Tune's upper bound is exclusive
    return {"uniform": tune.uniform, "loguniform": tune.loguniform}[dim.kind](*values)


def trial_config(base: dict[str, Any], sampled: dict[str, Any], trial_id: str) -> dict[str, Any]:
    """A trial's run config: the cell's config with the sampled values, in a folder of its own."""
    data = copy.deepcopy(base)
    for key, value in sampled.items():
        if key != "cell":
            set_dotted(data, key, value)
    data["runtime"]["output_dir"] = str(Path(base["runtime"]["output_dir"]) / trial_id)
    return data


def train_trial(sampled: dict[str, Any], bases: list[dict[str, Any]], tags: dict[str, str]) -> None:
    """Tune trainable: train one trial, reporting every epoch with the epoch's checkpoint."""
    from ray import tune

    from semiseg.runtime import run, run_dir_of

    trial_id = tune.get_context().get_trial_id()
    cfg = config_from_dict(trial_config(bases[sampled["cell"]], sampled, trial_id))
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    restored = tune.get_checkpoint()
    if restored is not None and not (run_dir / "last.pth").exists():  # restarted where the folder is missing
        with restored.as_directory() as folder:
            shutil.copy(Path(folder) / "last.pth", run_dir / "last.pth")

    def report(epoch: int, metrics: dict[str, float], last: Path) -> None:
        with tempfile.TemporaryDirectory() as folder:
            shutil.copy(last, Path(folder) / "last.pth")
            tune.report({**metrics, "epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(folder))

    def report_unless_last(epoch: int, metrics: dict[str, float], last: Path) -> None:
        if METRIC not in metrics:  # an epoch without evaluation (eval.every_n_epochs > 1): nothing to compare
            return
        if epoch < cfg.train.epochs:  # Tune may stop a trial at its last report: finish the run first
            report(epoch, metrics, last)
        else:
            final.update(epoch=epoch, metrics=metrics, last=last)

    final: dict[str, Any] = {}
    searched = {f"semiseg.search.{k}": v for k, v in sampled.items() if k != "cell"}
    trial_tags = {**tags, **searched, "semiseg.trial": trial_id}
    if cfg.train.gpus > 1:
        train_ranks(cfg, run_dir, trial_tags, report_unless_last)
    else:
        run(cfg, trial_tags, callbacks=[report_unless_last])
    if final:
        report(**final)


def train_ranks(cfg: RunConfig, run_dir: Path, tags: dict[str, str],
                on_epoch: Callable[[int, dict[str, float], Path], None]) -> None:
    """A trial of a cell with ``train.gpus: N``: its N ranks as child processes on the GPUs Ray granted the trial
    (:class:`~semiseg.launch.gang.Gang`, as the Ray backend starts such a cell), each evaluated epoch handed to
    ``on_epoch`` as rank 0 records it in the run's ``progress.json``. A trial stopped by the scheduler or
    interrupted stops its ranks gracefully (they checkpoint); a rank's failure fails the trial."""
    import ray

    progress = run_dir / PROGRESS_FILE
    seen = read_json(progress).get("epoch", 0)  # a restored trial: those epochs were reported before
    save_config(cfg, run_dir / "config.yaml")
    gang = Gang(run_dir / "config.yaml", {k: str(v) for k, v in tags.items()}, cfg.train.gpus,
                [str(g) for g in ray.get_gpu_ids()], run_dir / "train.log")

    def report_new() -> None:
        nonlocal seen
        for epoch, miou, best in read_json(progress).get("evaluations", []):
            if epoch > seen:
                seen = epoch
                on_epoch(int(epoch), {METRIC: miou, BEST: best}, run_dir / "last.pth")

    try:
        while (code := gang.poll()) is None:
            report_new()
            time.sleep(0.2)
    except BaseException:  # stopped by the scheduler, or Ctrl-C: the ranks checkpoint and stop
        gang.stop()
        raise
    if code != 0:
        raise RuntimeError(f"the {cfg.train.gpus} ranks of trial {run_dir.parent.name} stopped with exit code "
                           f"{code}; see {run_dir / 'train.log'}")
    report_new()


def _label(cell: Cell) -> str:
    return "/".join(str(v) for v in cell.axes.values())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require("ray", "ray", "tuning")
    exp = load_experiment(args.exp)
    dims = {d.key: d for d in map(parse_param, args.params)} if args.params else exp.search
    if not dims:
        raise UserError(f"nothing to search: give --param KEY=SPEC or add a search: block to experiment {exp.name!r}")
    for name, value, low in (("--num-samples", args.num_samples, 1), ("--grace-period", args.grace_period, 1),
                             ("--max-parallel", args.max_parallel, 0), ("--max-retries", args.max_retries, 0)):
        if value < low:
            raise UserError(f"{name} must be at least {low}, got {value}")
    if args.reduction_factor <= 1:
        raise UserError(f"--reduction-factor must be above 1, got {args.reduction_factor}")
    ray_backend.check_resources(args.cpus_per_cell, args.gpus_per_cell, "cell")
    if args.resume and not args.study:
        raise UserError("--resume needs --study NAME (the study to continue)")
    cells = select_cells(args)
    for cell in cells:
        validate(dims, config_to_dict(cell.config))

    study = args.study or f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = Path(args.output_dir).resolve() / "tune"
    if (storage / study).exists() != args.resume:
        raise UserError(f"study {study!r} {'does not exist' if args.resume else 'exists'} in {storage}; "
                        + ("check --study" if args.resume else "add --resume to continue it or pick another --study"))
    uri, mlflow_exp = resolve_uri(args.tracking_uri), args.mlflow_experiment or f"{exp.name}-tune"
    started = ray_backend.connect(args.ray_address)
    try:
        gpus = ray_backend.gpus_per_rank(args)
        ray_backend.check_fits([c.config.train.gpus for c in cells], args.cpus_per_cell, gpus, "trial")
        bases = _trial_bases(cells, storage / study / "runs", uri, mlflow_exp)
        parent = _parent_run(uri, mlflow_exp, study, exp.name, dims, args, cells)
        results = _fit(args, study, storage, dims, cells, bases, parent.run_id, exp.name, gpus)
    finally:
        if started:
            import ray

            ray.shutdown()
    return _summarise(results, args, study, exp.name, dims, cells, uri, mlflow_exp, parent)


def _trial_bases(cells: list[Cell], runs: Path, uri: str, mlflow_exp: str) -> list[dict[str, Any]]:
    """Each cell's config for trials: data prepared once here (absolute root), study folder and tracking."""
    from semiseg.data.datasets import DATASETS, dataset_root

    bases = []
    for cell in cells:
        data = config_to_dict(cell.config)
        data["data"]["root"] = str(dataset_root(DATASETS.get(cell.config.data.dataset), cell.config.data.root))
        data["runtime"].update(output_dir=str(runs), tracking_uri=uri, experiment=mlflow_exp)
        bases.append(data)
    return bases


def _parent_run(uri: str, mlflow_exp: str, study: str, exp_name: str, dims: dict[str, SearchDim],
                args: argparse.Namespace, cells: list[Cell]) -> RunTracker:
    tracker = RunTracker(uri, mlflow_exp)
    old = find_tagged_run(uri, mlflow_exp, "semiseg.study", study)
    tags = {"semiseg.study": study, "semiseg.exp": exp_name, "semiseg.kind": "study"}
    if old:
        tracker.reopen(old.run_id, tags)
    else:
        tracker.create(study, tags)
    tracker.log_params({**{f"search.{k}": d.describe() for k, d in dims.items()},
                        "study.cells": ", ".join(map(_label, cells)), "study.num_samples": args.num_samples,
                        "study.scheduler": args.scheduler, "study.metric": METRIC, "study.sets": " ".join(args.sets)})
    return tracker


def _fit(args, study: str, storage: Path, dims, cells, bases, parent_id: str, exp_name: str, gpus: float):
    from ray import tune
    from ray.tune import PlacementGroupFactory
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    tags = {"mlflow.parentRunId": parent_id, "semiseg.study": study, "semiseg.exp": exp_name,
            "semiseg.backend": "ray-tune"}
    def resources(sampled: dict[str, Any]) -> PlacementGroupFactory:
        """A trial of a cell with train.gpus: N reserves its resources once per rank, on one node, as a Ray
        backend cell does."""
        ranks = cells[sampled["cell"]].config.train.gpus
        return PlacementGroupFactory([{"CPU": args.cpus_per_cell * ranks, "GPU": gpus * ranks}])

    trainable = tune.with_resources(tune.with_parameters(train_trial, bases=bases, tags=tags), resources)
    # Ctrl-C raises KeyboardInterrupt here instead of Tune ending the trials as if they were complete
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    if args.resume:
        return _fit_or_none(tune.Tuner.restore(str(storage / study), trainable, resume_errored=True))
    epochs = max(c.config.train.epochs for c in cells)
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=min(args.grace_period, epochs),
                               reduction_factor=args.reduction_factor)
                 if args.scheduler == "asha" else FIFOScheduler())
    space = {"cell": tune.grid_search(list(range(len(cells)))) if len(cells) > 1 else 0,
             **{key: tune_space(dim) for key, dim in dims.items()}}
    tuner = tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", num_samples=args.num_samples, scheduler=scheduler,
                                    max_concurrent_trials=args.max_parallel or None),
        run_config=tune.RunConfig(name=study, storage_path=str(storage), verbose=1,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=args.max_retries)))
    return _fit_or_none(tuner)


def _fit_or_none(tuner):
    """The study's results, or None when it was interrupted."""
    try:
        return tuner.fit()
    except KeyboardInterrupt:
        return None


def _summarise(results, args, study: str, exp_name: str, dims, cells, uri: str, mlflow_exp: str,
               parent: RunTracker) -> int:
    if results is None:  # Ctrl-C: Tune's periodic state plus the trials' checkpoints allow --resume
        parent.set_tags({"semiseg.interrupted": "true"})
        parent.finish("KILLED")
        print(f"study {study} interrupted; continue it with the same command plus --study {study} --resume")
        return 130
    rows = []
    for res in sorted(results, key=lambda r: (r.metrics or {}).get("trial_id", "")):  # ties go to the first trial
        m = res.metrics or {}
        cell = res.config["cell"]
        epochs = cells[cell].config.train.epochs
        status = ("error" if res.error else "finished" if m.get("epoch", 0) >= epochs
                  else f"stopped at epoch {m.get('epoch', 0)}")
        rows.append({"trial": m.get("trial_id", "?"), "cell": cell, "status": status,
                     "params": {k: res.config[k] for k in dims}, "best": m.get(BEST, float("nan"))})
    _close_stopped_trials(uri, mlflow_exp, parent.run_id,
                          {r["trial"] for r in rows if r["status"].startswith("stopped")})
    print(f"\nstudy {study}: {len(rows)} trials (MLflow experiment {mlflow_exp!r}, parent run {parent.run_id})")
    for r in sorted(rows, key=lambda r: (r["cell"], -r["best"] if r["best"] == r["best"] else 0)):
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        print(f"  {r['trial']:12} {_label(cells[r['cell']]):24} {params:36} best mIoU {r['best']:6.2f}  {r['status']}")
    scored = [r for r in rows if r["status"] != "error" and r["best"] == r["best"]]
    if not scored:
        parent.finish("FAILED")
        print("no trial reported a result", file=sys.stderr)
        return 1
    best_by_cell: dict[int, dict] = {}
    for r in scored:
        if r["cell"] not in best_by_cell or r["best"] > best_by_cell[r["cell"]]["best"]:
            best_by_cell[r["cell"]] = r
    overall = max(scored, key=lambda r: r["best"])
    print(f"best: {_label(cells[overall['cell']])} {overall['params']} -> val mIoU {overall['best']:.2f} "
          f"(trial {overall['trial']})")
    out = Path(args.best_out) if args.best_out else experiments_dir() / f"{Path(exp_name).stem}_tuned.yaml"
    write_best(out, exp_name, study, mlflow_exp, parent.run_id, cells, best_by_cell, args.sets, args.gpus is not None)
    found_by_name = not args.best_out or out.resolve() == (experiments_dir() / out.name).resolve()
    print(f"wrote {out}: run it with {prog('grid', GRID)} --exp {out.stem if found_by_name else out}")
    parent.log({"best_miou": overall["best"], "trials": len(rows),
                "trials_stopped_early": sum(r["status"].startswith("stopped") for r in rows)}, step=0)
    parent.set_tags({"semiseg.best_trial": overall["trial"], "semiseg.interrupted": "false",
                     **{f"semiseg.best.{k}": v for k, v in overall["params"].items()}})
    parent.log_artifact(out)
    parent.finish("FINISHED" if len(scored) == len(rows) else "FAILED")
    return 0 if len(scored) == len(rows) else 1


def _close_stopped_trials(uri: str, mlflow_exp: str, parent_id: str, stopped: set[str]) -> None:
    """Trials the scheduler stopped end as KILLED (or are left RUNNING): tag them as stopped early."""
    for run in child_runs(uri, mlflow_exp, parent_id):
        if run.tags.get("semiseg.trial") in stopped:
            tracker = RunTracker(uri, mlflow_exp).attach(run.run_id)
            tracker.set_tags({"semiseg.tune.stopped_early": "true"})
            if run.status == "RUNNING":
                tracker.finish("KILLED")


def write_best(path: Path, exp_name: str, study: str, mlflow_exp: str, parent_id: str, cells: list[Cell],
               best_by_cell: dict[int, dict], sets: list[str], refit: bool = False) -> None:
    """An experiment inheriting ``exp_name`` that trains each tuned cell with its best values: the study's
    fixed ``--set`` overrides, then the best values, as the cell's last override rule, so each planned cell
    is the recipe of its best trial (the same ``semiseg.recipe``)."""
    overrides, grid = [], {}
    for idx, row in sorted(best_by_cell.items()):
        when = {a: v for a, v in cells[idx].axes.items() if a != "seed"}
        values: dict[str, Any] = apply_overrides({}, sets)
        if refit:  # --gpus re-fitted the trials' cells: the tuned recipe is the re-fitted one
            train = cells[idx].config.train
            values.setdefault("train", {}).update(gpus=train.gpus, batch_size=train.batch_size,
                                                  accum_steps=train.accum_steps)
        for key, value in row["params"].items():
            set_dotted(values, key, value)
        overrides.append({"when": when, "set": values})
        for axis, value in when.items():
            grid.setdefault(axis, [])
            if value not in grid[axis]:
                grid[axis].append(value)
    doc = {"description": f"{exp_name} with the best values of Ray Tune study {study} (val mIoU per cell)",
           "inherit": exp_name, "grid": grid, "overrides": overrides}
    header = (f"# written by semiseg tune: study {study}, MLflow experiment {mlflow_exp!r}, parent run {parent_id}\n"
              + "".join(f"# cell {_label(cells[i])}: best val mIoU {r['best']:.2f} (trial {r['trial']})\n"
                        for i, r in sorted(best_by_cell.items()))
              + (f"# the study's fixed overrides, applied in each rule: {' '.join('--set ' + s for s in sets)}\n"
                 if sets else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))


def cli() -> int:
    """The ``semiseg-tune`` console script."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
