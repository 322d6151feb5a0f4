"""The owner of the files holding tensors: training checkpoints (``last.pth``) and weights files.

Two formats, each with its own tag, both a plain dict written atomically by ``torch.save`` and loadable
with ``weights_only=True``:

- a **training checkpoint** (:data:`TRAINING_FORMAT`): everything an exact resume needs (model, optimizer,
  scaler, method state, progress counters, RNG states), the cell's config and hash, its experiment, its
  MLflow run id and the per-epoch metrics already reported (so a resume re-logs what MLflow lacks).
  ``rng`` is a list with one entry per data-parallel rank, in rank order, each that rank's own states
  (:func:`rng_state`: CPU, the CUDA generator of the rank's own device, numpy, python); each rank restores
  its own entry (:func:`rank_rng_state`). A checkpoint of an older semiseg holds one state (a dict) that
  every rank restores, as it used to. The loaders' positions need no entry: a rank's sample order follows
  from (seed, stream, epoch, rank) and ``state.epoch_iter``;
- a **weights file** (:data:`WEIGHTS_FORMAT`): one model's ``state_dict`` with the config that built it
  (or none) and free-form metadata (``best.pth``, the demo's pretext encoder).

Writes go to a temporary file beside the target (honouring the umask, so group members of a shared
folder can read them), are fsynced, then renamed. A write that fails for lack of space or permission
raises :class:`StorageError` saying so in plain words.
"""

from __future__ import annotations

import errno
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semiseg.errors import DataError, StorageError
from semiseg.runfiles import fault_point

TRAINING_FORMAT = "semiseg-checkpoint-v1"
WEIGHTS_FORMAT = "semiseg-weights-v1"
#: The keys every training checkpoint holds.
TRAINING_KEYS = ("model", "optimizer", "scaler", "method", "state", "rng", "config", "config_hash", "experiment",
                 "mlflow_run_id", "history")


class CheckpointError(DataError):
    """A checkpoint file cannot be read (torn, foreign, truncated)."""


def _write_atomic(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        fault_point("checkpoint_written")
        os.replace(tmp, path)
    except BaseException as exc:
        # torch's writer reports a full disk as a RuntimeError; the free space left (before the torn file
        # goes) tells it apart from a bug
        full = isinstance(exc, RuntimeError) and _free_bytes(path.parent) < 1 << 20
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) or full:
            code = errno.ENOSPC if full else exc.errno
            reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                      errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                      errno.EPERM: "permission denied"}.get(code, getattr(exc, "strerror", None) or str(exc))
            raise StorageError(code, f"cannot write {path}: {reason}") from None
        raise
    fault_point("checkpoint_renamed")


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _read(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} does not exist") from None
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise CheckpointError(f"{what} {path} cannot be read: it is truncated or not a file semiseg wrote "
                              f"({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not a semiseg {what} (format {fmt!r}, found {found!r})")
    return data


# --- training checkpoints -----------------------------------------------------------------------------------

def save_training(path: str | Path, **fields: Any) -> None:
    """Write a training checkpoint; ``fields`` are exactly :data:`TRAINING_KEYS`."""
    if set(fields) != set(TRAINING_KEYS):
        raise TypeError(f"a training checkpoint takes {TRAINING_KEYS}, got {sorted(fields)}")
    _write_atomic({"format": TRAINING_FORMAT, **fields}, Path(path))


def load_training(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_training` (:class:`CheckpointError` if unreadable)."""
    data = _read(path, TRAINING_FORMAT, "checkpoint")
    missing = [k for k in TRAINING_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)} (written by an older semiseg?)")
    return data


# --- weights files ------------------------------------------------------------------------------------------

@dataclass
class Weights:
    """A model's weights, the config that built it (None when not a run's model) and metadata."""

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def save_weights(path: str | Path, weights: Weights) -> None:
    _write_atomic({"format": WEIGHTS_FORMAT, "state_dict": weights.state_dict, "config": weights.config,
                   "meta": weights.meta}, Path(path))


def load_weights(path: str | Path) -> Weights:
    """The model weights in a weights file, or in a training checkpoint (its model and config)."""
    try:
        data = _read(path, WEIGHTS_FORMAT, "checkpoint or weights file")
        return Weights(data["state_dict"], data.get("config"), data.get("meta") or {})
    except CheckpointError as not_weights:
        try:
            ckpt = load_training(path)
        except CheckpointError:
            raise not_weights from None
        return Weights(ckpt["model"], ckpt["config"], {"epoch": ckpt["state"]["epoch"]})


# --- random states ------------------------------------------------------------------------------------------

def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """This process's global RNG states, in a form ``weights_only`` loading accepts: CPU, the CUDA generator of
    ``device`` only (a rank's own GPU; none for a CPU device), numpy and python."""
    np_state = np.random.get_state()
    cuda = device is not None and device.type == "cuda"
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if cuda else [],
        "cuda_device": device.index if cuda else None,
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def rank_rng_state(saved: dict[str, Any] | list[dict[str, Any]], rank: int, world: int) -> dict[str, Any]:
    """Rank ``rank``'s entry of a checkpoint's ``rng`` (a list per rank; an older checkpoint's single dict as is)."""
    if isinstance(saved, dict):
        return saved
    if len(saved) != world:
        raise CheckpointError(f"the checkpoint holds the random states of {len(saved)} process(es), this run has "
                              f"{world}")
    return saved[rank]


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if "cuda_device" in state:  # this rank's own device
            torch.cuda.set_rng_state(state["cuda"][0], torch.cuda.current_device())
        else:  # an older checkpoint: every device's state
            torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(_tuples(state["python"]))


def _tuples(value: Any) -> Any:
    """Checkpoint loading turns tuples into lists; random.setstate needs them back."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
