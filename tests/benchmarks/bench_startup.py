"""Start-up of one demo cell: process start → its first training step, as ``python -m semiseg.train`` runs it.

The parent writes a demo cell's config into a scratch folder (runs and MLflow store there; the demo data in
``data/demo`` of the project, made once), prepares the MLflow store there as
``launch/run_grid.py`` does (once per grid), then starts a child process per round. The child runs the
real CLI (:func:`semiseg.train.main`) with a hook that reports after the first step and exits. Printed
per round: wall seconds from the parent's spawn to the first step, and the child's CPU seconds (user+sys)
at that point, with the split: imports / setup (data, model, MLflow run) / first step.

    PYTHONPATH=. python tests/benchmarks/bench_startup.py --rounds 3 [--preimport]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(config: str, profile: str | None, preimport: bool) -> int:
    """Run the CLI on ``config``; after the first step print the timings as JSON and exit at once (writing a
    cProfile of the whole start-up to ``profile`` first, when given). ``preimport``: import everything the run
    imports first, so that setup counts only the run's own work."""
    imports_at = time.time()
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    import semiseg.runtime as runtime
    from semiseg.hooks import Hook
    from semiseg.train import main
    if preimport:  # what the run imports later on its own: MLflow's store, torch._dynamo (torch's optimizers)
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        import torch._dynamo  # noqa: F401
    imported = time.time(), cpu_s()

    class FirstStep(Hook):
        def before_train(self, trainer) -> None:
            self.setup = time.time(), cpu_s()

        def after_step(self, trainer, out) -> None:
            print(json.dumps({"imports_s": imported[0] - imports_at, "imports_cpu_s": imported[1],
                              "setup_s": self.setup[0] - imported[0], "step_s": time.time() - self.setup[0],
                              "first_step_at": time.time(), "cpu_s": cpu_s(),
                              "modules": sorted(m for m in ("timm", "mlflow", "torchvision.transforms.v2")
                                                if m in sys.modules)}), flush=True)
            if profile:
                profiler.dump_stats(profile)
            os._exit(0)

    build = runtime.build_trainer

    def build_with_probe(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.hooks.append(FirstStep())
        return trainer

    runtime.build_trainer = build_with_probe
    return main(["--config", config])


def write_config(scratch: Path, method: str, sets: list[str]) -> Path:
    from semiseg.experiments.registry import expand, load_experiment
    from semiseg.config import save_config
    from semiseg.tracking import get_or_create_experiment

    uri = f"sqlite:///{scratch / 'mlflow.db'}"
    (cell,) = expand(load_experiment("demo"), only={"method": [method], "split": ["1_16"], "seed": [0]},
                     sets=sets, runtime={"tracking_uri": uri, "output_dir": str(scratch / "runs")})
    get_or_create_experiment(uri, cell.config.runtime.experiment)  # as run_grid does, once per grid
    path = scratch / "config.yaml"
    save_config(cell.config, path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--method", default="unimatch")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, e.g. --set model.pretrained= (no named weights)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the last round's start-up here")
    parser.add_argument("--preimport", action="store_true",
                        help="import MLflow's store and torch._dynamo with the CLI, so setup excludes all imports")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.profile, args.preimport)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    print(f"load average {os.getloadavg()[0]:.2f}")
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(Path(tmp), args.method, args.sets)
            started = time.time()
            profile = ["--profile", str(Path(args.profile).resolve())] if args.profile and i == args.rounds - 1 else []
            flags = [*profile, *(["--preimport"] if args.preimport else [])]
            out = subprocess.run([sys.executable, __file__, "--child", str(config), *flags], env=env, cwd=ROOT,
                                 capture_output=True, text=True, check=False)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if not lines:
                print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
                return 1
            t = json.loads(lines[-1])
            heavy = ", ".join(t["modules"]) or "none of timm, mlflow, torchvision.transforms.v2"
            print(f"round {i + 1}: first step {t['first_step_at'] - started:.2f} s wall, {t['cpu_s']:.2f} s CPU "
                  f"(imports {t['imports_s']:.2f} s wall / {t['imports_cpu_s']:.2f} s CPU, setup {t['setup_s']:.2f} s, "
                  f"first step {t['step_s']:.2f} s); imported: {heavy}", flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
