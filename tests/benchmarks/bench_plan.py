"""Time the planning of a large grid: expansion into validated, hashed configs plus one MLflow query.

Builds a 10,000-cell experiment (the demo recipe x 4 methods x 5 splits x 500 seeds), expands it and plans it
against a real sqlite MLflow store holding a few runs, the way ``run_grid.py --dry-run`` does. Example:

    python tests/benchmarks/bench_plan.py --seeds 500          # 4 x 5 x 500 = 10,000 cells
"""

from __future__ import annotations

import argparse
import tempfile
import time


from semiseg.experiments.registry import expand, load_experiment
from semiseg.launch.plan import plan
from semiseg.tracking import RunTracker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=500, help="seeds per (method, split) cell (default 500)")
    parser.add_argument("--runs", type=int, default=20, help="finished runs to put in the store first (default 20)")
    args = parser.parse_args()
    exp = load_experiment("demo")
    only = {"method": ["supervised", "fixmatch", "unimatch", "prevmatch"],
            "split": ["1_32", "1_16", "1_8", "1_4", "all"], "seed": list(range(args.seeds))}
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        expand(exp, {"seed": [0]})  # one-time: imports the method/dataset/encoder registries (torch)
        t0, c0 = time.perf_counter(), time.process_time()
        cells = expand(exp, only, runtime={"tracking_uri": uri, "output_dir": tmp})
        t_expand, c_expand = time.perf_counter() - t0, time.process_time() - c0
        for cell in cells[:args.runs]:  # a store that already knows some cells
            tracker = RunTracker(uri, exp.name)
            tracker.create(cell.short, {"semiseg.hash": cell.hash, "semiseg.exp": exp.name})
            tracker.finish("FINISHED")
        t0, c0 = time.perf_counter(), time.process_time()
        planned = plan(cells)
        t_plan, c_plan = time.perf_counter() - t0, time.process_time() - c0
    finished = sum(p.state == "finished" for p in planned)
    print(f"{len(cells)} cells: expand+validate+hash {t_expand:.2f} s, plan (one MLflow query) {t_plan:.2f} s, "
          f"total {t_expand + t_plan:.2f} s wall, {c_expand + c_plan:.2f} s CPU (a busy machine inflates wall "
          f"time); {finished} cells found finished")


if __name__ == "__main__":
    main()
