"""Writers for the bad-input corpus: a tiny ``folder`` dataset, run configs, experiment files, stores.

Everything is written into one case's folder ``d``; a case then breaks one thing in it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

SIZE = 16
TRAIN = [f"train_{i:03d}" for i in range(4)]
VAL = ["val_000"]


def pair(stem: str) -> str:
    return f"images/{stem}.png masks/{stem}.png"


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (SIZE, SIZE), fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, fmt)


def write_mask(path: Path, values: np.ndarray | None = None, size: tuple[int, int] = (SIZE, SIZE)) -> None:
    """A grayscale class-index PNG: by default classes 0 and 1 and one 255 (ignore) pixel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if values is None:
        values = np.zeros((size[1], size[0]), np.uint8)
        values[: size[1] // 2] = 1
        values[0, 0] = 255
    Image.fromarray(values).save(path)


def folder_data(d: Path) -> Path:
    """``d/data``: 2 classes, 4 train + 1 val images of 16 px, split ``s`` (2 labeled, 2 unlabeled)."""
    root = d / "data"
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("background\nobject\n")
    for i, stem in enumerate(TRAIN + VAL):
        write_image(root / "images" / f"{stem}.png", seed=i)
        write_mask(root / "masks" / f"{stem}.png")
    write_lists(root, labeled=TRAIN[:2], unlabeled=TRAIN[2:], val=VAL)
    return root


def write_lists(root: Path, labeled=None, unlabeled=None, val=None, split: str = "s") -> None:
    for name, stems in ((f"{split}/labeled.txt", labeled), (f"{split}/unlabeled.txt", unlabeled), ("val.txt", val)):
        if stems is not None:
            path = root / "splits" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(pair(s) + "\n" for s in stems))


def merge(base: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    """``base`` with dotted-key ``edits`` (a value of ``DROP`` removes the key)."""
    out = json.loads(json.dumps(base))
    for dotted, value in edits.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is DROP:
            node.pop(last, None)
        else:
            node[last] = value
    return out


DROP = object()


def run_config(d: Path, method: str = "supervised") -> dict[str, Any]:
    """A one-step CPU run on ``d/data``, tracked in ``d/mlflow.db``, writing to ``d/runs``."""
    return {
        "method": method, "seed": 0,
        "data": {"dataset": "folder", "root": str(d / "data"), "split": "s", "crop_size": SIZE},
        "model": {"backbone": "tiny", "output_stride": 8, "aspp_dilations": [1, 2, 3]},
        "optim": {"name": "sgd", "lr": 0.01, "lr_multi": 1.0},
        "train": {"epochs": 1, "batch_size": 2, "max_iters_per_epoch": 1},
        "runtime": {"num_workers": 0, "threads": 1, "device": "cpu", "output_dir": str(d / "runs"),
                    "tracking_uri": f"sqlite:///{d / 'mlflow.db'}", "experiment": "bad"},
    }


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


EXPERIMENT = {
    "description": "bad-input corpus",
    "defaults": {"data": {"dataset": "demo", "crop_size": 32},
                 "model": {"backbone": "tiny", "output_stride": 8, "aspp_dilations": [1, 2, 3]},
                 "train": {"epochs": 1, "batch_size": 2}},
    "grid": {"method": ["supervised", "fixmatch"], "split": ["1_16"], "seed": [0]},
}


def store_runs(db: Path) -> list[tuple[str, str, str]]:
    """(run name, status, semiseg.error tag) of every run in a sqlite MLflow store."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT r.name, r.status, COALESCE(t.value, '') FROM runs r LEFT JOIN tags t "
                           "ON t.run_uuid = r.run_uuid AND t.key = 'semiseg.error'").fetchall()


def snapshot(d: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``d`` with (size, mtime) for files, (-1, 0) for folders."""
    out = {}
    for path in d.rglob("*"):
        if "__pycache__" in path.parts or path.name == "mlflow.db.lock":  # the tracking module's open lock
            continue
        stat = path.stat()
        out[path.relative_to(d).as_posix()] = (-1, 0) if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
    return out
