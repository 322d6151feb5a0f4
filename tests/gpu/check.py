"""GPU check of the engine (issue 15): a few optimizer steps per row, with step time and peak memory.

Rows: every registered method in bf16 and in fp16 on its paper encoder (the Pascal recipe of
``experiments/_paper.yaml``: ResNet-101 DeepLabV3+, DINOv2-B DPT for the V2 methods) at a small crop; runs
through the real DDP path in a 1-process NCCL group (CorrMatch, UniMatch V2, UniMatch with accumulation);
and a plain accumulation run; ``resume/2rank``: the exact resume of every rank (issue 27) on the GPU, two
processes sharing it (gloo, as NCCL refuses two ranks on one device) with rank-dependent draws on their CUDA
generators, rank 0 SIGKILLed after a mid-epoch checkpoint and relaunched: its ``loss`` column says ``exact``
when the final weights equal an uninterrupted run's (else the row fails). Each other row builds its trainer
with the run assembly, untracked (``semiseg.runtime.build_trainer(cfg, tracked=False)``: data, model,
``distributed.wrap``, method, optimizer; no MLflow, no checkpoints), runs 1 untimed and ``--steps`` timed
optimizer steps on the demo data and prints one line (PrevMatch rows start with ``prevmatch.num_models``
snapshots, so the ensemble pass is timed too).

``--device cpu`` is the tiny mode (``tiny`` / ``dinov2_small`` encoders, crop 28, gloo, fp32 since autocast is
CUDA-only in the trainer) that keeps the script from rotting without a GPU. Results go to stdout and, when
``$OUT`` is set, to ``$OUT/gpu_check.tsv``. Run it as ``tests/gpu/check.sh`` (see there).
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from semiseg.experiments.registry import expand, load_experiment
from semiseg.config import RunConfig, apply_overrides, config_from_dict, config_to_dict
from semiseg.data.demo import ensure_demo
from semiseg.data.demo_ood import ensure_demo_ood
from semiseg.methods import METHODS
from semiseg.runtime import build_trainer
from semiseg.trainer import Trainer

COLUMNS = ("row", "method", "backbone", "amp", "crop", "batch", "accum", "ddp", "step_ms", "peak_mib", "loss")


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    amp: str
    accum: int = 1
    ddp: bool = False


def rows() -> list[Row]:
    out = [Row(f"{m}/{amp}", m, amp) for m in METHODS.names() for amp in ("bf16", "fp16")]
    out += [Row("ddp/corrmatch/bf16", "corrmatch", "bf16", ddp=True),
            Row("ddp/unimatch_v2/bf16", "unimatch_v2", "bf16", ddp=True),
            Row("accum2/unimatch/bf16", "unimatch", "bf16", accum=2),
            Row("ddp-accum2/unimatch/bf16", "unimatch", "bf16", accum=2, ddp=True),
            Row("resume/2rank", "unimatch", "off", ddp=True)]
    return out


def _launch_ranks(config: Path, out: Path, fault: str = "") -> list[int]:
    """Two ranks of tests/rank_rng_worker.py on this machine's first device (gloo), rank 0 with ``fault``."""
    worker = Path(__file__).resolve().parents[1] / "rank_rng_worker.py"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "LOCAL_RANK": "0", "SEMISEG_DIST_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(worker), str(config), str(out)],
                              env={**base, "RANK": str(r), **({"SEMISEG_FAULT": fault} if fault and r == 0 else {})},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    if not fault and any(p.returncode for p in procs):
        raise RuntimeError(f"ranks exited {[p.returncode for p in procs]}: {errors[0][-500:]}{errors[1][-500:]}")
    return [p.returncode for p in procs]


def run_resume_row(row: Row, args, demo: Path, tmp: Path) -> dict:
    """``resume/2rank``: a killed and relaunched 2-rank run ends with the uninterrupted run's weights."""
    from semiseg.config import save_config

    weights = {}
    for name, fault in (("straight", ""), ("killed", "checkpoint_renamed:1")):
        folder = tmp / "resume" / name
        cfg = config_from_dict(apply_overrides(config_to_dict(row_config(row, args, demo, tmp)), [
            "train.gpus=2", "train.epochs=1", "train.max_iters_per_epoch=4", "runtime.checkpoint_every_iters=2",
            "train.amp=off", f"runtime.output_dir={folder}", f"runtime.tracking_uri=sqlite:///{folder}/mlflow.db"]))
        folder.mkdir(parents=True, exist_ok=True)
        save_config(cfg, folder / "run.yaml")
        if fault:
            _launch_ranks(folder / "run.yaml", folder / "final.pt", fault)
        _launch_ranks(folder / "run.yaml", folder / "final.pt")
        weights[name] = torch.load(folder / "final.pt")
    differ = [k for k in weights["straight"] if not torch.equal(weights["straight"][k], weights["killed"][k])]
    if differ:
        raise AssertionError(f"the resumed weights differ from an uninterrupted run's: {', '.join(differ[:3])}")
    return {"row": row.name, "method": row.method, "backbone": cfg.model.backbone, "amp": "off",
            "crop": cfg.data.crop_size, "batch": cfg.train.batch_size, "accum": 1, "ddp": 2, "step_ms": "-",
            "peak_mib": "-", "loss": "exact"}


def paper_recipe(method: str) -> dict:
    """The method's Pascal recipe (encoder, optimizer, batch, method options) as a config dict."""
    (cell,) = expand(load_experiment("pascal_all"), {"method": [method], "split": ["92"]})
    return config_to_dict(cell.config)


def row_config(row: Row, args, demo: Path, tmp: Path) -> RunConfig:
    data = paper_recipe(row.method)
    v2 = data["model"]["backbone"].startswith("dinov2")
    sets = ["data.dataset=demo", f"data.root={demo}", "data.split='1_32'", f"data.crop_size={args.crop}",
            "model.pretrained=''", "train.gpus=1", f"train.amp={row.amp}", f"train.accum_steps={row.accum}",
            f"train.max_iters_per_epoch={(args.steps + 1) * row.accum}", "train.epochs=1",
            f"runtime.device={args.device}", "runtime.num_workers=0", f"runtime.output_dir={tmp}"]
    if args.device == "cpu":
        sets += ["model.backbone=dinov2_small" if v2 else "model.backbone=tiny", "train.batch_size=2"]
        if not v2:
            sets += ["model.output_stride=8", "model.aspp_dilations=[1, 2, 3]"]
    if args.batch:
        sets.append(f"train.batch_size={args.batch}")
    return config_from_dict(apply_overrides(data, sets))


def build(cfg: RunConfig) -> Trainer:
    """The engine of one run from the one run assembly, untracked: no MLflow, checkpoints or evaluation."""
    return build_trainer(cfg, tracked=False)


def run_row(row: Row, args, demo: Path, tmp: Path) -> dict:
    if row.name == "resume/2rank":
        return run_resume_row(row, args, demo, tmp)
    cfg = row_config(row, args, demo, tmp)
    cuda = cfg.runtime.device == "cuda"
    if row.ddp:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                                world_size=1)
    try:
        trainer = build(cfg)
        assert row.ddp == (type(trainer.model).__name__ == "DistributedDataParallel")
        prev = getattr(trainer.method, "prev", None)  # PrevMatch: time the step with a full snapshot ensemble
        for _ in range(prev.p.num_models if prev else 0):
            prev.store.add()
        trainer.data.set_epoch(0)
        trainer.model.train()
        trainer.method.begin_epoch(0)
        iterators = {name: iter(trainer.data.loaders[name]) for name in trainer.method.streams}
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        times, loss = [], float("nan")
        for step in range(args.steps + 1):
            micro = [{name: next(it) for name, it in iterators.items()} for _ in range(row.accum)]
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = trainer.run_step(*micro)
            loss = float(out.loss.detach())  # a host sync: the step is complete
            trainer.state.iteration += 1
            trainer._call("after_step", out)
            if step:  # the first step (cuDNN autotuning, allocator warm-up) is not timed
                times.append(time.perf_counter() - start)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
        return {"row": row.name, "method": row.method, "backbone": cfg.model.backbone,
                "amp": row.amp if cuda else "off", "crop": cfg.data.crop_size, "batch": cfg.train.batch_size,
                "accum": row.accum, "ddp": int(row.ddp), "step_ms": f"{1000 * statistics.median(times):.1f}",
                "peak_mib": f"{peak:.0f}", "loss": f"{loss:.4f}"}
    finally:
        if row.ddp:
            dist.destroy_process_group()
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu = the tiny mode")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per row (after 1 untimed)")
    parser.add_argument("--crop", type=int, default=0, help="crop size; 0 = 224 on cuda, 28 on cpu (multiples of 14)")
    parser.add_argument("--batch", type=int, default=0, help="per-GPU batch; 0 = the paper recipe's (cpu: 2)")
    parser.add_argument("--rows", nargs="*", default=["*"], help="row name patterns, e.g. 'ddp/*' (default all)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device: use --device cpu for the tiny mode")
    args.crop = args.crop or (224 if args.device == "cuda" else 28)
    selected = [r for r in rows() if any(fnmatch.fnmatch(r.name, p) for p in args.rows)]
    if not selected:
        parser.error(f"no row matches {args.rows}; rows: {', '.join(r.name for r in rows())}")
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    table = out_dir / "gpu_check.tsv" if out_dir else None
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"# torch {torch.__version__}, {device_name}, {args.steps} timed steps per row, crop {args.crop}", flush=True)
    print("\t".join(COLUMNS), flush=True)
    if table:
        table.write_text("\t".join(COLUMNS) + "\n")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        demo = ensure_demo(Path(tmp) / "demo")
        if any(r.method.startswith("semiovs") for r in selected):
            ensure_demo_ood(Path(tmp) / "demo_ood")
        for row in selected:
            try:
                line = "\t".join(str(v) for v in run_row(row, args, demo, Path(tmp) / "runs").values())
            except Exception as exc:  # noqa: BLE001 - report the row and go on with the others
                failed += 1
                line = f"{row.name}\tFAILED\t{type(exc).__name__}: {exc}"
            print(line, flush=True)
            if table:
                with table.open("a") as f:
                    f.write(line + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
