"""The demo's cost per phase and the robustness of its answer: UniMatch vs supervised at 1/16 over seeds × precisions.

Runs what ``make demo`` runs, into a fresh folder (its own ``SEMISEG_CACHE``, MLflow store and run folders):
the pretext weights, then for each ``--amp`` value the demo's UniMatch and supervised cells at 1/16 over
``--seeds`` (``launch/run_grid.py --max-parallel 2``, one method at a time so that each phase is timed on its
own). It prints per phase the wall and the CPU seconds (all child processes), then the table of best val mIoU
per seed, each method's seed spread and UniMatch's margin over supervised, with the hardware; the last line is
JSON. The oneDNN ISA cap is the caller's environment: run it again under ``ONEDNN_MAX_CPU_ISA=AVX2`` for a CPU
without native bf16. Example (the figures in NOTES.md):

    python tests/benchmarks/bench_demo.py --out /tmp/demo_bench --seeds 0,1,2,3 --amp auto,bf16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from semiseg.cli import run_cli
from semiseg.precision import cpu_bf16_native, isa_cap, resolve_amp
from semiseg.tracking import search_cells

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("unimatch", "supervised")


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(phases: dict, name: str, cmd: list[str], env: dict) -> None:
    wall, cpu = time.perf_counter(), child_cpu_s()
    done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited {done.returncode}: {done.stderr[-3000:]}")
    phases[name] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(child_cpu_s() - cpu, 1)}
    print(f"  {name:<28} {phases[name]['wall_s']:7.1f} s wall {phases[name]['cpu_s']:8.1f} CPU-s", flush=True)


def pieces(out: Path, steps: int) -> dict:
    """CPU seconds (``time.process_time``, this process) of the demo's pieces on its real data: building a cell,
    loading a batch, a training step, an evaluation, for the UniMatch and supervised cells at 1/16 (1 thread,
    their recipe) and the pretext recipe (2 threads), random init; with the per-demo step totals they imply."""
    from semiseg.experiments.registry import expand, load_experiment
    from semiseg.config import config_from_dict
    from semiseg.data.demo import ensure_demo
    from semiseg.evaluate import evaluate
    from semiseg.models.registry import DEMO_PRETEXT
    from semiseg.runtime import build_trainer

    root = ensure_demo(out / "data" / "demo")
    cells = expand(load_experiment("demo"), {"split": ["1_16"], "method": list(METHODS)},
                   [f"data.root={root}", "model.pretrained="])
    runs = [(c.axes["method"], c.config, 2) for c in cells]
    pretext = {**DEMO_PRETEXT.run, "data": {**DEMO_PRETEXT.run["data"], "dataset": "demo", "split": "1_16",
                                            "root": str(root), "sup_nsample": 768},
               "runtime": {"threads": DEMO_PRETEXT.threads, "device": "cpu", "num_workers": 0}}
    runs.append(("pretext (demo images as a stand-in)", config_from_dict(pretext), 1))  # its 768 x 20 epochs
    result = {}
    for name, cfg, count in runs:  # count: runs of it per demo (two seeds of each cell)
        t0 = time.process_time()
        trainer = build_trainer(cfg, tracked=False)
        t1 = time.process_time()
        trainer.data.set_epoch(0)
        its = {k: iter(v) for k, v in trainer.data.loaders.items()}
        batches = [{k: next(its[k]) for k in trainer.method.streams} for _ in range(steps + 2)]
        t2 = time.process_time()
        for i, batch in enumerate(batches):
            if i == 2:
                t3 = time.process_time()
            trainer.run_step(batch)
        t4 = time.process_time()
        evaluate(trainer.model, trainer.data.val_loader, trainer.data.num_classes, trainer.device,
                 protocol=trainer.data.protocol)
        t5 = time.process_time()
        step = (t4 - t3) / steps + (t2 - t1) / len(batches)
        total_steps = trainer.total_iters * count
        result[name] = {"build_s": round(t1 - t0, 2), "load_ms": round((t2 - t1) / len(batches) * 1000, 1),
                        "step_ms": round((t4 - t3) / steps * 1000, 1), "eval_s": round(t5 - t4, 2),
                        "steps_per_demo": total_steps, "steps_cpu_s_per_demo": round(step * total_steps, 1)}
        print(f"  {name}: {json.dumps(result[name])}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="a new folder for the cache, store and runs")
    parser.add_argument("--seeds", default="0,1,2,3", help="seeds of every cell (default 0,1,2,3)")
    parser.add_argument("--amp", default="auto", help="train.amp values of the cells, comma-separated (default auto)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="a config value of every cell (repeatable), e.g. --set train.epochs=8")
    parser.add_argument("--pieces", type=int, default=0, metavar="STEPS",
                        help="only time the pieces (build, batch, step, evaluation) over STEPS steps each")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SEMISEG_CACHE": str(args.out / "cache"), "PYTHONPATH": str(ROOT)}
    py, phases, table = sys.executable, {}, {}
    native, why = cpu_bf16_native()
    hardware = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "onednn_max_cpu_isa": isa_cap(),
                "cpu_native_bf16": native, "detail": why, "cpus": os.cpu_count()}
    print("hardware: " + ", ".join(f"{k} {v}" for k, v in hardware.items()), flush=True)
    if args.pieces:
        print(json.dumps({"hardware": hardware, "pieces": pieces(args.out, args.pieces)}))
        return 0
    timed(phases, "pretext (data + weights)", [py, "-m", "semiseg.pretext"], env)
    for amp in args.amp.split(","):
        uri = f"sqlite:///{args.out / f'mlflow_{amp}.db'}"
        for method in METHODS:
            timed(phases, f"{method} x{len(args.seeds.split(','))} amp={amp}",
                  [py, "launch/run_grid.py", "--exp", "demo", "--splits", "1_16", "--methods", method,
                   "--seed-list", args.seeds, "--max-parallel", "2", "--tracking-uri", uri,
                   "--output-dir", str(args.out / f"runs_{amp}"), "--set", f"train.amp={amp}",
                   *[f"--set={o}" for o in args.overrides]], env)
        runs = [r for r in search_cells(uri, "demo") if r.status == "FINISHED"]
        table[amp] = {m: {int(r.params["seed"]): round(r.metrics["best_miou"], 2) for r in runs
                          if r.params["method"] == m} for m in METHODS}
        table[amp]["resolved"] = resolve_amp(amp, torch.device("cpu"))
    print_table(table)
    print(json.dumps({"hardware": hardware, "phases": phases, "best_miou": table}))
    return 0


def print_table(table: dict) -> None:
    for amp, rows in table.items():
        seeds = sorted(rows["unimatch"])
        print(f"\ntrain.amp={amp} (ran as {rows['resolved']}): best val mIoU at 1/16")
        print("| method | " + " | ".join(f"seed {s}" for s in seeds) + " | spread | mean |")
        for m in METHODS:
            vals = [rows[m].get(s, float("nan")) for s in seeds]
            print(f"| {m} | " + " | ".join(f"{v:.1f}" for v in vals)
                  + f" | {max(vals) - min(vals):.1f} | {sum(vals) / len(vals):.1f} |")
        gains = [rows["unimatch"][s] - rows["supervised"][s] for s in seeds]
        spread = max(max(rows[m].values()) - min(rows[m].values()) for m in METHODS)
        print("| UniMatch − supervised | " + " | ".join(f"{g:+.1f}" for g in gains)
              + f" | min gain {min(gains):+.1f} vs largest spread {spread:.1f} | {sum(gains) / len(gains):+.1f} |")


if __name__ == "__main__":
    sys.exit(run_cli(main))
