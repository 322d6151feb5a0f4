"""Train-time data pipeline throughput per worker (one process, one thread, as in a DataLoader worker).

Decodes and augments a Pascal-sized 500x375 JPEG and a Cityscapes-sized 2048x1024 PNG with their masks,
through the exact ``train_l`` / ``train_u`` / ``val`` pipelines, and prints images/s for each.

    PYTHONPATH=. python tests/benchmarks/bench_pipeline.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from semiseg.data.datasets import SegDataset


def natural_image(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth colour blobs plus mild noise: compresses like a photo, unlike pure noise."""
    small = rng.integers(0, 256, (max(h // 32, 2), max(w // 32, 2), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)


def make_sample(root: Path, name: str, h: int, w: int, ext: str, classes: int) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / f"{name}.{ext}"), natural_image(h, w, rng))
    blocks = rng.integers(0, classes, (h // 50 + 1, w // 50 + 1), dtype=np.uint8)
    mask = cv2.resize(blocks, (w, h), interpolation=cv2.INTER_NEAREST)
    Image.fromarray(mask).save(root / f"{name}_mask.png")
    return f"{name}.{ext}", f"{name}_mask.png"


def throughput(dataset: SegDataset, seconds: float) -> float:
    index = (lambda i: 0) if dataset.mode == "val" else (lambda i: (0, i))
    dataset[index(0)]  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dataset[index(n + 1)]
        n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = [("pascal 500x375 jpg", make_sample(root, "voc", 375, 500, "jpg", 21), 21, 321),
                 ("cityscapes 2048x1024 png", make_sample(root, "city", 1024, 2048, "png", 19), 19, 801)]
        print(f"{'image':26s} {'mode':8s} {'crop':>5s} {'images/s per worker':>20s}")
        for label, entry, classes, crop in cases:
            for mode in ("train_l", "train_u", "val"):
                ds = SegDataset(root, [entry], mode, classes, crop_size=crop)
                rate = throughput(ds, args.seconds)
                print(f"{label:26s} {mode:8s} {crop if mode != 'val' else '-':>5} {rate:20.1f}", flush=True)


if __name__ == "__main__":
    main()
