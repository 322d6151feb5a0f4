"""Local backend: a pool running each cell as its own ``python -m semiseg.train`` process(es).

A cell with ``train.gpus: N`` runs as N processes (:class:`semiseg.launch.gang.Gang`). GPUs are counted, not cells:
on a 4-GPU machine one 4-GPU cell or two 2-GPU cells run at a time (``CUDA_VISIBLE_DEVICES`` narrows the
pool); ``--max-parallel`` caps the number of cells. Without GPUs the N ranks run on the CPU with gloo.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from semiseg.cells import CellRecord
from semiseg.cli import EXIT_RESUMABLE
from semiseg.launch.gang import Gang
from semiseg.launch.plan import PlannedCell
from semiseg.config import save_config
from semiseg.errors import UserError
from semiseg.runfiles import LOCK_NAME, CellLock, describe_holder, lock_holder


@dataclass
class Slot:
    planned: PlannedCell
    gang: Gang
    gpus: list[str]
    last_epoch: int = -1


#: Exit status of a training process stopped gracefully (a stop signal, or its own alert): KILLED, resumable.
EXIT_STOPPED = 130


@dataclass
class LocalResult:
    finished: list[PlannedCell] = field(default_factory=list)
    failed: list[PlannedCell] = field(default_factory=list)
    skipped: list[PlannedCell] = field(default_factory=list)
    #: ended resumable: exit 75 (a refused write, a lost rank) or 130 (the run stopped itself, e.g. an alert)
    stopped: list[PlannedCell] = field(default_factory=list)
    stop_code: int = 0  # the exit status the launcher passes on for the stopped cells (the highest)
    interrupted: bool = False


_CLAIMS: dict[Path, CellLock] = {}


def claim(p: PlannedCell) -> bool:
    """Take the cell's lock for this launcher (held until :func:`release`) when nobody holds it and the cell
    is still to do: a launch that planned it before another one finished it leaves it alone."""
    record = CellRecord(p.cell.config)
    lock = record.lock()
    if not lock.acquire():
        return False
    if record.finished_run():
        lock.release()  # finished by another launch since the plan
        p.state = "finished"
        return False
    _CLAIMS[p.run_dir] = lock
    return True


def release(run_dir: Path) -> None:
    lock = _CLAIMS.pop(run_dir, None)
    if lock is not None:
        lock.release()


def skip_reason(p: PlannedCell) -> str:
    if p.state == "finished":
        return "finished by another launch meanwhile"
    holder = lock_holder(p.run_dir)
    return f"already running ({describe_holder(holder, p.run_dir / LOCK_NAME)})" if holder else "already running"


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU")]


def _label(p: PlannedCell) -> str:
    a = p.cell.axes
    return f"{a.get('method', p.cell.config.method)}/{a.get('split', p.cell.config.data.split)}/s{p.cell.config.seed}"


def log_epoch(p: PlannedCell, last_epoch: int, log=print) -> int:
    """Log the cell's progress line when ``progress.json`` shows a new epoch; return the epoch seen."""
    prog = p.progress()
    if prog.get("epoch") and prog["epoch"] != last_epoch:
        eta = f", ETA {prog['eta_s']:.0f} s" if prog.get("eta_s") is not None else ""
        log(f"  {_label(p)}: epoch {prog['epoch']}/{prog['epochs']} "
            f"mIoU {prog['last_miou']:.2f} (best {prog['best_miou']:.2f}){eta}")
        return prog["epoch"]
    return last_epoch


def run_local(cells: list[PlannedCell], exp_name: str, max_parallel: int, log=print) -> LocalResult:
    """Run ``cells``, at most ``max_parallel`` at once and, when GPUs exist, as many as their GPUs allow."""
    result = LocalResult()
    gpus = visible_gpus()
    free_gpus = list(gpus)
    too_big = [p for p in cells if gpus and p.cell.config.train.gpus > len(gpus)]
    if too_big:
        raise UserError(f"cell {too_big[0].cell.short} needs train.gpus={too_big[0].cell.config.train.gpus} but this "
                        f"machine shows {len(gpus)} GPU(s) ({', '.join(gpus)}); use --gpus {len(gpus)} to re-fit "
                        f"the recipes, or another backend")
    queue, running = list(cells), []
    total = len(cells)

    def fits(p: PlannedCell) -> bool:
        return len(running) < max_parallel and (not gpus or p.cell.config.train.gpus <= len(free_gpus))

    def start(p: PlannedCell) -> None:
        if not claim(p):
            log(f"  skip {_label(p)} ({p.cell.short}): {skip_reason(p)}")
            result.skipped.append(p)
            return
        save_config(p.cell.config, p.run_dir / "config.yaml")
        ranks = p.cell.config.train.gpus
        mine = [free_gpus.pop(0) for _ in range(ranks)] if gpus else []
        gang = Gang(p.run_dir / "config.yaml", {"semiseg.exp": exp_name, "semiseg.backend": "local"}, ranks, mine,
                    p.run_dir / "train.log")
        running.append(Slot(p, gang, mine))
        log(f"  start {_label(p)} ({p.cell.short}) pid {' '.join(map(str, gang.pids))}"
            + (f" gpu {','.join(mine)}" if mine else "") + f", log {p.run_dir / 'train.log'}")

    def reap(slot: Slot, code: int) -> None:
        running.remove(slot)
        release(slot.planned.run_dir)
        free_gpus.extend(slot.gpus)
        done = len(result.finished) + len(result.failed) + len(result.stopped) + 1
        if code == EXIT_RESUMABLE or (code == EXIT_STOPPED and not result.interrupted):
            result.stopped.append(slot.planned)
            result.stop_code = max(result.stop_code, code)
            log(f"[{done}/{total}] STOPPED {_label(slot.planned)} (exit {code}): interrupted and resumable, run the "
                f"same command again{' once fixed' if code == EXIT_RESUMABLE else ''}; last log lines:\n"
                f"{_tail(slot.planned.run_dir / 'train.log')}")
        elif code == 0:
            result.finished.append(slot.planned)
            best = slot.planned.progress().get("best_miou", float("nan"))
            log(f"[{done}/{total}] finished {_label(slot.planned)}: best mIoU {best:.2f}")
        else:
            result.failed.append(slot.planned)
            tail = _tail(slot.planned.run_dir / "train.log")
            log(f"[{done}/{total}] FAILED {_label(slot.planned)} (exit {code}); last log lines:\n{tail}")

    try:
        while queue or running:
            while queue and fits(queue[0]):
                start(queue.pop(0))
            time.sleep(0.5)
            for slot in list(running):
                slot.last_epoch = log_epoch(slot.planned, slot.last_epoch, log)
                code = slot.gang.poll()
                if code is not None:
                    reap(slot, code)
    except KeyboardInterrupt:
        result.interrupted = True
        log("interrupted: stopping running cells (they checkpoint and stay resumable; run the same command to "
            "resume)")
        for slot in running:
            slot.gang.stop()  # graceful: the step finishes, then a checkpoint
            release(slot.planned.run_dir)
    return result


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line for line in text[-lines:])
