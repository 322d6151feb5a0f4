"""Time producing all report tables from 10,000 runs: read from a real MLflow store, then every table.

What is measured:

1. ``tables``: from a runs frame of ``--runs`` rows with exactly the columns :func:`semiseg.tracking.runs_frame`
   returns (cell tags, state, start/end times, resource params, summary and per-class metrics), build every
   (dataset, backbone) table, the published-vs-reproduced comparison and render markdown, LaTeX and CSV (plots
   are not in this figure).
2. ``store``: ``--store-runs`` of those runs, each with ``--params`` params (default 120; a real run logs ~75) and
   a real run's 15 tags, are written to a real sqlite MLflow store with :func:`semiseg.tracking.log_runs_batch`
   (write time: informational), then ``runs_frame`` reads them back (``read``) and all tables are built from that
   frame (``tables from the store``); ``end-to-end`` = read + tables, the figure with the < 5 s target. The tables
   from the store must equal those from the synthetic frame. ``--client`` also times the MLflow-client read path
   (``runs_frame(..., sql=False)``) and checks it gives the same frame. Writing 10,000 runs takes a long while
   (one MLflow log_batch per run), so ``--store DIR`` keeps the store for later runs.

    python tests/benchmarks/bench_reports.py                     # 10,000-run frame, 200 runs through sqlite
    python tests/benchmarks/bench_reports.py --store-runs 10000 --store /tmp/bench-store --client

Measured (2 shared cores, load average 4.2-4.6 from other work, sqlite store of 330 MB on disk), with
``--store-runs 10000 --store /tmp/ff/s10k --client``:

    write: 10000 runs written with log_runs_batch in 1164 s (120 params, 15 tags per run)
    read: runs_frame of 10000 stored runs in 1.12 s (SQL read)
    tables from the store: 0.12 s; equal to the synthetic frame's: True
    end-to-end (read + all tables): 1.25 s for 10000 runs, best of 3 (worst 1.47 s; target < 5 s; ...)
    client read: runs_frame(sql=False) in 42.40 s, frame equal to the SQL read's

In a fresh process (imports included, ``import mlflow`` among them) reading the same store and building all
tables took 3.64 s.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path


import numpy as np
import pandas as pd

from semiseg.reports import published as pub
from semiseg.reports import tables as tb
from semiseg import tracking
from semiseg.config import RunConfig, config_to_dict, flatten

GRID = {
    ("pascal", "resnet101"): ["92", "183", "366", "732", "1464"],
    ("pascal", "resnet50"): ["92", "183", "366", "732", "1464"],
    ("cityscapes", "resnet101"): ["1_16", "1_8", "1_4", "1_2"],
    ("coco", "xception"): ["1_512", "1_256", "1_128", "1_64", "1_32"],
}
METHODS = ["supervised", "fixmatch", "unimatch", "prevmatch", "corrmatch"]
#: Labeled images per split (the HQ splits are their own count; fractions get a stand-in count).
N_LABELED = {s: int(s) if s.isdigit() else 10_000 // int(s.split("_")[1]) for v in GRID.values() for s in v}
CLASSES = [f"class{i}" for i in range(21)]
STATES = {"FINISHED": "finished", "FAILED": "failed", "RUNNING": "interrupted"}
#: Params per run: a real run logs ~75 today (config + derived values); 120 leaves room for the config to grow.
PARAMS = 120


def run_params(n_params: int) -> dict:
    """Params as a training run logs them: the flattened default config and ``derived.*`` values (about 75), padded
    with ``extra.<i>`` to ``n_params``."""
    params = flatten(config_to_dict(RunConfig()))
    params.update({f"derived.{k}": v for k, v in {
        "iters_per_epoch": 1323, "total_iters": 105840, "n_labeled": 92, "n_unlabeled": 10490,
        "parameters": 59_339_861, "parameters_backbone": 42_500_160, "parameters_head": 16_839_701,
        "device": "cuda:0", "global_batch": 8, "effective_lr": 0.001, "eval_protocol": "sliding"}.items()})
    params.update({f"extra.{i}": i * 0.5 for i in range(n_params - len(params))})
    return params


def synthetic_runs(n: int, n_params: int = PARAMS, seed: int = 0) -> list[dict]:
    """``n`` run specs for :func:`tracking.log_runs_batch`: the grid's cells × seeds, 5 % failed, 3 % running, each
    with ``n_params`` params and the tags of a real run."""
    rng = np.random.default_rng(seed)
    entries = [(d, b, m, s) for (d, b), splits in GRID.items() for m in METHODS for s in splits]
    base = run_params(n_params)
    specs = []
    for i in range(n):
        dataset, backbone, method, split = entries[i % len(entries)]
        seed_i = i // len(entries)
        status = rng.choice(["FINISHED", "FAILED", "RUNNING"], p=[0.92, 0.05, 0.03])
        cell = f"{dataset}-{backbone}-{method}-{split}-{seed_i}"
        value = float(rng.uniform(40, 80))
        metrics = {"best_miou": value, "last_miou": value - 0.5} if status == "FINISHED" else {}
        metrics.update({f"val/iou/{c}": float(rng.uniform(0, 100)) for c in CLASSES} if metrics else {})
        start = 1_700_000_000_000 + i * 1000
        params = {**base, "method": method, "seed": seed_i, "data.dataset": dataset, "data.split": split,
                  "model.backbone": backbone, "train.gpus": int(rng.choice([1, 2, 4]))}
        specs.append({"name": cell, "status": str(status), "start_time": start,
                      "end_time": start + int(rng.uniform(1, 10) * 3.6e6), "params": params, "metrics": metrics,
                      "tags": {"semiseg.exp": "bench", "semiseg.method": method, "semiseg.dataset": dataset,
                               "semiseg.split": split, "semiseg.backbone": backbone, "semiseg.seed": seed_i,
                               "semiseg.hash": f"h-{cell}", "semiseg.n_labeled": N_LABELED[split],
                               "semiseg.recipe": f"r-{dataset}-{backbone}-{method}-{split}",
                               "semiseg.git_commit": "0" * 40, "semiseg.run_dir": f"/data/runs/bench/{cell}",
                               "semiseg.backend": "slurm", "semiseg.reported_model": "student",
                               "semiseg.checkpoint.best": f"/data/runs/bench/{cell}/best.pth",
                               "semiseg.checkpoint.last": f"/data/runs/bench/{cell}/last.pth"}})
    return specs


def frame_of(specs: list[dict]) -> pd.DataFrame:
    """The frame ``runs_frame`` would return for these runs (same columns and value types)."""
    rows = []
    for i, spec in enumerate(specs):
        row = {"run_id": f"r{i}", "status": spec["status"], "state": STATES[spec["status"]],
               "start_time": spec["start_time"],
               "end_time": 0 if spec["status"] == "RUNNING" else spec["end_time"]}
        row.update({k: str(spec["tags"].get(tracking.TAG_PREFIX + k)) for k in tracking.CELL_TAGS})
        row.update({k: str(spec["params"][k]) if k in spec["params"] else None for k in tracking.FRAME_PARAMS})
        row.update({f"metrics.{k}": v for k, v in spec["metrics"].items()})
        rows.append(row)
    return pd.DataFrame(rows)


def all_outputs(frame: pd.DataFrame, published: pd.DataFrame) -> tuple[str, str, pd.DataFrame]:
    """Everything make_tables writes except plots: markdown (with the published comparison), LaTeX, CSV rows."""
    tables = tb.build_tables(frame, "best")
    comparison = pub.compare(tables, published)
    markdown = tb.render_markdown(tables, "bench") + pub.render_markdown(comparison)
    latex = tb.render_latex(tables, "bench") + pub.render_latex(comparison, "bench")
    return markdown, latex, tb.csv_frame(tables, "bench")


def load() -> str:
    """The machine's 1-minute load average over its cores, e.g. '1.9 on 2 cores'."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def store_runs(uri: str, specs: list[dict]) -> str:
    """Write ``specs`` to the store at ``uri`` unless it already holds them (a kept ``--store``); say what was done."""
    held = tracking.sql_runs(uri, "bench")
    if held and len(held) == len(specs):
        return f"{len(specs)} runs already in {uri} (kept store, not rewritten)"
    if held:
        sys.exit(f"{uri} holds another number of bench runs: pass an empty --store folder")
    t0 = time.perf_counter()
    tracking.log_runs_batch(uri, "bench", specs)
    return f"{len(specs)} runs written with log_runs_batch in {time.perf_counter() - t0:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the frame (default 10000)")
    parser.add_argument("--store-runs", type=int, default=200,
                        help="runs also written to and read from a real sqlite store (default 200; 0 = skip)")
    parser.add_argument("--params", type=int, default=PARAMS, help=f"params per run (default {PARAMS})")
    parser.add_argument("--store", metavar="DIR", help="keep the sqlite store in DIR (reused by a later run with the "
                        "same --store-runs; default: a temporary folder)")
    parser.add_argument("--client", action="store_true",
                        help="also time runs_frame through the MLflow client (sql=False) and compare the frames")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions, the best is reported (default 3)")
    args = parser.parse_args()
    print(f"load: {load()}")

    specs = synthetic_runs(max(args.runs, args.store_runs), args.params)
    frame = frame_of(specs[:args.runs])
    published = pub.load_published()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        markdown, latex, csv = all_outputs(frame, published)
        times.append(time.perf_counter() - t0)
    n_tables = markdown.count("\n## ") - 1
    print(f"tables: {args.runs} runs -> {n_tables} tables + published comparison (markdown, LaTeX, {len(csv)} CSV "
          f"rows) in {min(times):.2f} s (best of {args.repeat})")
    if not args.store_runs:
        return

    sample = specs[:args.store_runs]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.store or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{folder.resolve()}/mlflow.db"
        t0 = time.perf_counter()
        importlib.import_module("mlflow")  # timed apart: paid once per process, whatever the number of runs
        t_import = time.perf_counter() - t0
        print(f"write: {store_runs(uri, sample)} ({args.params} params, {len(sample[0]['tags'])} tags per run)")
        reads, builds, totals = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            stored = tracking.runs_frame(uri, "bench")
            reads.append(time.perf_counter() - t0)
            outputs = all_outputs(stored, published)
            builds.append(time.perf_counter() - t0 - reads[-1])
            totals.append(reads[-1] + builds[-1])
        same = outputs[0] == all_outputs(frame_of(sample), published)[0]
        best = int(np.argmin(totals))
        print(f"read: runs_frame of {len(stored)} stored runs in {reads[best]:.2f} s (SQL read)")
        print(f"tables from the store: {builds[best]:.2f} s; equal to the synthetic frame's: {same}")
        print(f"end-to-end (read + all tables): {totals[best]:.2f} s for {len(stored)} runs, best of {args.repeat} "
              f"(worst {max(totals):.2f} s; target < 5 s; `import mlflow` {t_import:.1f} s once per process, apart)")
        if args.client:
            t0 = time.perf_counter()
            client = tracking.runs_frame(uri, "bench", sql=False)
            t_client = time.perf_counter() - t0
            pd.testing.assert_frame_equal(client, stored)
            print(f"client read: runs_frame(sql=False) in {t_client:.2f} s, frame equal to the SQL read's")
    print(f"load: {load()}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
