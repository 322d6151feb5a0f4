"""The small state files of a run folder: atomic JSON, the cell lock, torn temporary files, fault points.

A run folder (``<runtime.output_dir>/<runtime.experiment>/<hash>``) holds ``config.yaml``, ``run.json``
(the MLflow run of the cell), ``last.pth`` / ``best.pth``, ``progress.json``, ``train.log`` and ``lock``.
Every JSON file here is written to a temporary file and renamed over the old one, and read defensively:
a missing, empty or corrupt file reads as "no record" (with a warning for a corrupt one), never as a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from semiseg.errors import ConfigError, StorageError

LOCK_NAME = "lock"
RUN_FILE = "run.json"
PROGRESS_FILE = "progress.json"
#: Set by a launcher that holds a cell's lock for the training process it starts (the process then takes none).
LOCK_HELD_ENV = "SEMISEG_CELL_LOCK_HELD"
#: Fault injection for the lifecycle tests: ``NAME`` or ``NAME:N`` (the N-th time, 1-based) kills this process
#: with SIGKILL when it reaches :func:`fault_point` ``NAME``.
FAULT_ENV = "SEMISEG_FAULT"
_fault_counts: dict[str, int] = {}


def run_dir_for(output_dir: str | Path, experiment: str, short_hash: str) -> Path:
    """The folder of one cell of one experiment: two experiments never share a folder, a checkpoint or a run."""
    return Path(output_dir) / experiment / short_hash


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temporary file in the same folder, then rename)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; {} when it is missing, empty or not a JSON object (a warning for the last)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        print(f"warning: {path} is not a JSON object; ignoring it", file=sys.stderr, flush=True)
        return {}
    return data


def clean_torn_files(run_dir: Path) -> list[Path]:
    """Remove the temporary files a killed writer left behind (``*.tmp``); the caller holds the cell lock."""
    torn = sorted(run_dir.glob("*.tmp"))
    for path in torn:
        path.unlink(missing_ok=True)
    return torn


@contextlib.contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (made with its folder), waiting while another process
    holds it: for one-time work beside a shared file (a new MLflow store, a named weights file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file drops the lock


class CellLock:
    """An exclusive ``flock`` on ``<run_dir>/lock``: one process trains (or launches) a cell at a time.

    The kernel drops the lock when its holder dies, so a lock is never stale; the file names the holder
    (pid, host, command, time) for messages. Works across the nodes of an NFSv4 file system.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it. A folder that cannot be written
        (read-only, forbidden, full) raises :class:`~semiseg.errors.StorageError` naming it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except (NotADirectoryError, FileExistsError):
            blocker = next((p for p in self.path.parents if p.exists() and not p.is_dir()), self.path.parent)
            raise ConfigError(f"runtime.output_dir: {blocker} is a file, not a folder (the run folder "
                              f"{self.path.parent} goes under it); give a folder") from None
        except OSError as exc:
            raise StorageError(exc.errno, f"cannot write the run folder {self.path.parent}: "
                                          f"{exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (removing it would race a new holder)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def lock_holder(run_dir: Path) -> dict | None:
    """Who holds the cell's lock (``{'pid', 'host', 'command', 'since'}``), or None when nobody does."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(os.pread(fd, 4096, 0) or b"{}") or {"pid": "?"}
            except ValueError:
                return {"pid": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe_holder(holder: dict, lock: Path) -> str:
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} ({holder.get('command', '?')}) holds {lock}"


def fault_point(name: str) -> None:
    """Die here with SIGKILL when :data:`FAULT_ENV` names this point (lifecycle fault-injection tests)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _fault_counts[name] = _fault_counts.get(name, 0) + 1
    if _fault_counts[name] == int(nth or 1):
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
