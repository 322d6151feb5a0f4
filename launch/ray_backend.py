"""Ray backend: every cell is a Ray task that trains in its worker process (local runtime or a cluster).

Why the task runs the engine in-process rather than spawning ``python -m semiseg.train``: the Ray worker
*is* the training process, so Ray's grant (CPU slots, ``CUDA_VISIBLE_DEVICES``) applies to the training
itself, a worker that dies takes its training with it (no orphaned child keeps writing), and Ray's own
retry of tasks whose worker died (``max_retries``) re-runs the cell, which resumes from ``last.pth`` into
the same MLflow run (the run id is in the checkpoint and in ``run.json``). The task body is the one run
assembly and lifecycle of every backend (:func:`semiseg.runtime.run`). A GPU cell gets a fresh worker
(``max_calls=1``) so its CUDA context and cached memory go away with it; CPU workers are reused, which
saves a torch import per cell (every cell seeds and configures its own run in the assembly).
Idempotence is the local backend's: the plan decides what runs, a lock in the run folder (held by this
launcher's pid) keeps two launches off one cell. On a multi-node cluster the output folder, the data and
the tracking store must be shared (a network file system, or an MLflow server URI).
"""

from __future__ import annotations

import argparse
import os
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import semiseg
from semiseg.launch.gang import Gang
from semiseg.launch.local import LocalResult, _label, _tail, claim, log_epoch, release, skip_reason
from semiseg.launch.plan import PlannedCell
from semiseg.config import RunConfig, config_from_dict, config_to_dict, save_config
from semiseg.errors import UserError
from semiseg.runfiles import read_json
from semiseg.tracking import resolve_uri

ROOT = Path(semiseg.__file__).resolve().parents[1]  # the folder holding the semiseg package: the workers' PYTHONPATH
#: Ray reads this at import: "0" makes a local runtime use 127.0.0.1 as its node address (loopback only).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
ATTEMPTS = "ray_attempts"


def check_resources(cpus: float, gpus: float | None, what: str) -> None:
    """Ray's rules: CPUs > 0, GPUs >= 0 and whole when above 1."""
    if cpus <= 0:
        raise UserError(f"--cpus-per-{what} must be positive, got {cpus}")
    if gpus is not None and (gpus < 0 or (gpus > 1 and gpus != int(gpus))):
        raise UserError(f"--gpus-per-{what} must be a fraction in [0, 1] or a whole number, got {gpus}")


def check_fits(ranks: list[int], cpus: float, gpus: float, what: str) -> None:
    """Refuse work that the Ray cluster can never schedule (it would wait forever): a unit of ``r`` ranks asks for
    ``r * cpus`` CPUs and ``r * gpus`` GPUs on one node."""
    import ray

    widest = max(ranks)
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    have = {kind: max((node.get(kind, 0) for node in nodes), default=0) for kind in ("CPU", "GPU")}
    for kind, per_rank in (("CPU", cpus), ("GPU", gpus)):
        if widest * per_rank > have[kind]:
            raise UserError(f"a {what} of a cell with train.gpus={widest} needs {widest * per_rank:g} {kind}s on one "
                            f"node ({widest} ranks x {per_rank:g}) but the largest Ray node has {have[kind]:g}: "
                            "re-fit the cells with --gpus 1, or lower --cpus-per-cell")


def gpus_per_rank(args: argparse.Namespace) -> float:
    """--gpus-per-cell, or one GPU per rank where the Ray cluster has GPUs."""
    import ray

    if args.gpus_per_cell is not None:
        return args.gpus_per_cell
    return 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0


def connect(address: str | None) -> bool:
    """Connect to ``address`` or start a local runtime on 127.0.0.1; True when this call started Ray."""
    if address is None:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    import ray

    if ray.is_initialized():
        return False
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": path}}  # workers import this project like the driver does
    try:
        if address:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        else:
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, runtime_env=runtime_env)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"--ray-address {address}: cannot connect to a Ray cluster ({exc})") from None
    return True


def prepare_datasets(configs: list[RunConfig]) -> None:
    """Generate each distinct generated dataset once, here, instead of in every worker. A dataset that is
    missing or broken is left to the cells: each records the failure in its own run, as on every backend."""
    from semiseg.data.datasets import DATASETS, dataset_root

    for dataset, root in sorted({(c.data.dataset, c.data.root) for c in configs}):
        try:
            dataset_root(DATASETS.get(dataset), root)
        except UserError:
            pass


def worker_config(cfg: RunConfig) -> dict[str, Any]:
    """The config as sent to a worker: an absolute tracking URI, whatever the worker's folder."""
    data = config_to_dict(cfg)
    data["runtime"]["tracking_uri"] = resolve_uri(cfg.runtime.tracking_uri)
    return data


def attempts(run_dir: Path) -> int:
    try:
        return int((run_dir / ATTEMPTS).read_text())
    except (OSError, ValueError):
        return 0


def run_cell(config: dict[str, Any], tags: dict[str, str], cwd: str) -> dict[str, float]:
    """Ray task body: train or resume one cell; its output goes to the cell's ``train.log``.

    A one-process cell trains in this worker (:func:`semiseg.runtime.run`); a cell with ``train.gpus: N``
    starts its N ranks as child processes of this worker on the GPUs Ray granted the task
    (:class:`semiseg.launch.gang.Gang`), so Ray's reservation covers all of them.
    """
    from semiseg.runtime import run, run_dir_of

    if Path(cwd).is_dir():
        os.chdir(cwd)  # relative paths (data.root) mean what they mean to the launcher
    cfg = config_from_dict(config)
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    attempt = attempts(run_dir) + 1
    (run_dir / ATTEMPTS).write_text(str(attempt))
    tags = {**tags, "semiseg.ray_attempt": str(attempt)}
    with open(run_dir / "train.log", "a", buffering=1) as log, redirect_stdout(log), redirect_stderr(log):
        print(f"ray: attempt {attempt} on node {os.uname().nodename}, worker pid {os.getpid()}", flush=True)
        if cfg.train.gpus == 1:
            outcome = run(cfg, tags, lock_held=True)
            return {"best_miou": outcome.state.best_miou if outcome.state else float("nan"), "attempt": attempt}
    import ray

    gpus = [str(g) for g in ray.get_gpu_ids()]
    save_config(cfg, run_dir / "config.yaml")
    gang = Gang(run_dir / "config.yaml", tags, cfg.train.gpus, gpus, run_dir / "train.log")
    try:
        while (code := gang.poll()) is None:
            time.sleep(0.5)
    except BaseException:  # cancelled (Ctrl-C of the launcher): the ranks checkpoint and stop
        gang.stop()
        raise
    if code != 0:
        raise RuntimeError(f"the {cfg.train.gpus} ranks of cell {run_dir.name} stopped with exit code {code}; see "
                           f"{run_dir / 'train.log'}")
    best = read_json(run_dir / "progress.json").get("best_miou", float("nan"))
    return {"best_miou": best, "attempt": attempt}


@dataclass
class Flight:
    planned: PlannedCell
    first: int  # the cell's attempt count when it was submitted
    seen: int = 0  # the newest attempt already reported
    last_epoch: int = -1


def run_ray(cells: list[PlannedCell], exp_name: str, args: argparse.Namespace, log=print) -> LocalResult:
    """Run ``cells`` as Ray tasks (at most ``args.max_parallel`` at once when given) and wait for all."""
    check_resources(args.cpus_per_cell, args.gpus_per_cell, "cell")
    if args.max_retries < 0:
        raise UserError(f"--max-retries must be at least 0, got {args.max_retries}")
    started = connect(args.ray_address)
    try:
        gpus = gpus_per_rank(args)
        check_fits([p.cell.config.train.gpus for p in cells], args.cpus_per_cell, gpus, "cell")
        prepare_datasets([p.cell.config for p in cells])
        return _dispatch(cells, exp_name, args, gpus, log)
    finally:
        if started:
            import ray

            ray.shutdown()


def _dispatch(cells: list[PlannedCell], exp_name: str, args: argparse.Namespace, gpus: float, log) -> LocalResult:
    import ray

    task = ray.remote(max_calls=1 if gpus else 0)(run_cell)
    options = dict(max_retries=args.max_retries, retry_exceptions=False)
    log(f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, {ray.cluster_resources().get('GPU', 0):g} GPUs; "
        f"each cell asks for {args.cpus_per_cell:g} CPU(s), {gpus:g} GPU(s) per rank (train.gpus ranks)")
    result, queue, flights = LocalResult(), list(cells), {}
    cap = args.max_parallel or len(cells)
    tags = {"semiseg.exp": exp_name, "semiseg.backend": "ray"}
    try:
        while queue or flights:
            while queue and len(flights) < cap:
                p = queue.pop(0)
                if not claim(p):
                    log(f"  skip {_label(p)} ({p.cell.short}): {skip_reason(p)}")
                    result.skipped.append(p)
                    continue
                save_config(p.cell.config, p.run_dir / "config.yaml")
                ranks = p.cell.config.train.gpus  # a data-parallel cell reserves its resources once per rank
                ref = task.options(name=f"cell-{p.cell.short}", num_cpus=args.cpus_per_cell * ranks,
                                   num_gpus=gpus * ranks, **options).remote(worker_config(p.cell.config), tags,
                                                                            os.getcwd())
                flights[ref] = Flight(p, attempts(p.run_dir))
                log(f"  submit {_label(p)} ({p.cell.short}), log {p.run_dir / 'train.log'}")
            if not flights:
                break
            done, _ = ray.wait(list(flights), num_returns=len(flights), timeout=0.5)
            for flight in flights.values():
                flight.last_epoch = log_epoch(flight.planned, flight.last_epoch, log)
                now = attempts(flight.planned.run_dir)
                if now > max(flight.seen, flight.first + 1):
                    log(f"  {_label(flight.planned)}: worker lost, attempt {now - flight.first} resumes "
                        f"from its checkpoint")
                    flight.seen = now
            for ref in done:
                _reap(ref, flights.pop(ref), result, len(cells), log)
    except KeyboardInterrupt:
        result.interrupted = True
        log("interrupted: cancelling running cells (they stay resumable; run the same command to resume)")
        for ref in flights:
            ray.cancel(ref)  # KeyboardInterrupt inside the task: the run is marked KILLED, resumable
        ray.wait(list(flights), num_returns=len(flights), timeout=60)
        for flight in flights.values():
            release(flight.planned.run_dir)
    return result


def _reap(ref, flight: Flight, result: LocalResult, total: int, log) -> None:
    import ray

    p = flight.planned
    release(p.run_dir)
    n = len(result.finished) + len(result.failed) + 1
    try:
        out = ray.get(ref)
    except ray.exceptions.RayError as exc:
        result.failed.append(p)
        cause = getattr(exc, "cause", None) or exc
        log(f"[{n}/{total}] FAILED {_label(p)}: {type(cause).__name__}: {str(cause).splitlines()[0][:300]}; "
            f"last log lines:\n{_tail(p.run_dir / 'train.log')}")
        return
    result.finished.append(p)
    retries = out["attempt"] - flight.first - 1
    retried = f" after {retries} retry(ies)" if retries > 0 else ""
    log(f"[{n}/{total}] finished {_label(p)}: best mIoU {out['best_miou']:.2f}{retried}")
