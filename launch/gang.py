"""The processes of one cell: ``train.gpus`` ranks of ``python -m semiseg.train``, started and stopped together.

A cell with ``train.gpus: N`` runs as N processes with the standard torch.distributed variables (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1``, a free ``MASTER_PORT``), each seeing the cell's
GPUs (``CUDA_VISIBLE_DEVICES``; rank r uses the r-th) or none on a CPU-only machine, where they talk gloo.
The local and Ray backends both start cells this way, so the training process is the same as under SLURM
or torchrun. When one rank dies the others cannot finish a collective step: they are killed too, and the
cell is left for a relaunch to resume from its last checkpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from semiseg.runfiles import LOCK_HELD_ENV


def _stop_with_parent() -> None:
    """In the child: receive SIGTERM when the launcher dies (killed outright included), so a rank never trains
    on as an orphan; SIGTERM is a graceful stop with a checkpoint."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gang:
    """The ranks of one training run as child processes; rank 0 and the others log to ``log`` (appended)."""

    def __init__(self, config: Path, tags: dict[str, str], ranks: int, gpus: list[str] | None, log: Path,
                 env: dict[str, str] | None = None) -> None:
        base = {**os.environ, **(env or {}), LOCK_HELD_ENV: "1",
                "CUDA_VISIBLE_DEVICES": ",".join(gpus) if gpus else ""}
        if ranks > 1:
            base.update(WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        cmd = [sys.executable, "-m", "semiseg.train", "--config", str(config)]
        for key, value in tags.items():
            cmd += ["--tag", f"{key}={value}"]
        self.procs: list[subprocess.Popen] = []
        with open(log, "ab") as out:
            for rank in range(ranks):
                env_r = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)} if ranks > 1 else base
                self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env_r,
                                                   preexec_fn=_stop_with_parent if sys.platform == "linux" else None))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def poll(self) -> int | None:
        """None while running; 0 when every rank exited 0; else the first failing rank's exit code, after
        the other ranks were stopped (a lost rank leaves its peers waiting in a collective forever)."""
        codes = [p.poll() for p in self.procs]
        failed = [c for c in codes if c not in (None, 0)]
        if failed:
            for p in self.procs:
                if p.poll() is None:
                    p.kill()
            for p in self.procs:
                p.wait()
            return failed[0]
        return 0 if all(c == 0 for c in codes) else None

    def stop(self, grace_s: float = 60.0) -> None:
        """Graceful stop: SIGTERM to every rank (they agree on a step and checkpoint), then SIGKILL after
        ``grace_s``."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + grace_s
        for p in self.procs:
            try:
                p.wait(timeout=max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
