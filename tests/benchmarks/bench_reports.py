"""Time producing all report tables from 10,000 runs.

What is measured:

1. ``tables`` (the target, < 5 s): from a runs frame of ``--runs`` rows with exactly the columns
   :func:`semiseg.tracking.runs_frame` returns (cell tags, state, start/end times, resource params, summary and
   per-class metrics), build every (dataset, backbone) table, the published-vs-reproduced comparison and render
   markdown, LaTeX and CSV. Plots and MLflow I/O are not in this figure.
2. ``store`` (reported separately): ``--store-runs`` of those runs are written to a real sqlite MLflow store with
   :func:`semiseg.tracking.log_runs_batch` and read back with ``runs_frame``; the tables built from the store
   must equal those built from the synthetic frame (writing all 10,000 runs to sqlite takes minutes, so by
   default a 200-run sample is written; pass ``--store-runs 10000`` for the full store).

    python tests/benchmarks/bench_reports.py                     # 10,000-run frame, 200 runs through sqlite
    python tests/benchmarks/bench_reports.py --runs 10000 --store-runs 0
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from reports import published as pub  # noqa: E402
from reports import tables as tb  # noqa: E402
from semiseg import tracking  # noqa: E402

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


def synthetic_runs(n: int, seed: int = 0) -> list[dict]:
    """``n`` run specs for :func:`tracking.log_runs_batch`: the grid's cells × seeds, 5 % failed, 3 % running."""
    rng = np.random.default_rng(seed)
    entries = [(d, b, m, s) for (d, b), splits in GRID.items() for m in METHODS for s in splits]
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
        specs.append({"name": cell, "status": str(status), "start_time": start,
                      "end_time": start + int(rng.uniform(1, 10) * 3.6e6),
                      "params": {"train.gpus": int(rng.choice([1, 2, 4])), "derived.device": "cuda:0"},
                      "metrics": metrics,
                      "tags": {"semiseg.exp": "bench", "semiseg.method": method, "semiseg.dataset": dataset,
                               "semiseg.split": split, "semiseg.backbone": backbone, "semiseg.seed": seed_i,
                               "semiseg.hash": f"h-{cell}", "semiseg.n_labeled": N_LABELED[split]}})
    return specs


def frame_of(specs: list[dict]) -> pd.DataFrame:
    """The frame ``runs_frame`` would return for these runs (same columns and value types)."""
    rows = []
    for i, spec in enumerate(specs):
        row = {"run_id": f"r{i}", "status": spec["status"], "state": STATES[spec["status"]],
               "start_time": spec["start_time"],
               "end_time": 0 if spec["status"] == "RUNNING" else spec["end_time"]}
        row.update({k: str(spec["tags"].get(tracking.TAG_PREFIX + k)) for k in tracking.CELL_TAGS})
        row.update({k: str(spec["params"][k]) for k in tracking.FRAME_PARAMS})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the frame (default 10000)")
    parser.add_argument("--store-runs", type=int, default=200,
                        help="runs also written to and read from a real sqlite store (default 200; 0 = skip)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions, the best is reported (default 3)")
    args = parser.parse_args()

    specs = synthetic_runs(args.runs)
    frame = frame_of(specs)
    published = pub.load_published()
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        markdown, latex, csv = all_outputs(frame, published)
        times.append(time.perf_counter() - t0)
    n_tables = markdown.count("\n## ") - 1
    print(f"tables: {args.runs} runs -> {n_tables} tables + published comparison (markdown, LaTeX, {len(csv)} CSV "
          f"rows) in {min(times):.2f} s (best of {args.repeat}; target < 5 s)")

    if args.store_runs:
        sample = specs[:args.store_runs]
        with tempfile.TemporaryDirectory() as tmp:
            uri = f"sqlite:///{tmp}/mlflow.db"
            t0 = time.perf_counter()
            tracking.log_runs_batch(uri, "bench", sample)
            t_write = time.perf_counter() - t0
            t0 = time.perf_counter()
            stored = tracking.runs_frame(uri, "bench")
            t_read = time.perf_counter() - t0
            same = all_outputs(stored, published)[0] == all_outputs(frame_of(sample), published)[0]
        print(f"store: {len(sample)} runs written with log_batch in {t_write:.1f} s, read by runs_frame in "
              f"{t_read:.2f} s; tables from the store equal the synthetic frame's: {same}")
        if not same:
            sys.exit(1)


if __name__ == "__main__":
    main()
