"""Train-time data pipeline throughput per worker (one process, one thread, as in a DataLoader worker).

Decodes and augments a Pascal-sized 500x375 JPEG and a Cityscapes-sized 2048x1024 PNG with their masks,
through the exact ``train_l`` / ``train_u`` / ``val`` pipelines, and prints images/s for each path,
measured in interleaved rounds in this one process (median of the rounds):

* ``old``: the pipeline before issue 16 (``legacy_pipeline.py``: float32/int64 out of the worker);
* ``new``: uint8 out of the worker, strong views made in the worker (what a CPU run's workers do);
* ``new+gpu``: uint8 out, strong views' colour left to the device (what a CUDA run's workers do);
* ``pre26``: ``new`` with the strong views' colour as before issue 26 (OpenCV hue and blur, torchvision's
  tensor jitter) instead of PIL's, so ``new / pre26`` is what PIL-exact colour costs a CPU run's worker.

It then times the device side of the strong views alone, on this CPU and on CUDA when there is one: a batch of
8 crops made as before issue 26 (one image at a time) against today's batched, PIL-exact ``apply_colour``.

For the new paths it also prints what ``to_device`` then costs per image on this CPU (normalisation,
and for ``new+gpu`` the strong views): work that a CUDA run does on the GPU and a CPU run in the
training process.

    PYTHONPATH=. python tests/benchmarks/bench_pipeline.py [--seconds 2] [--rounds 5] [--only pascal]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).parent))
from legacy_pipeline import LegacySegDataset, device_colour, strong_colour

from semiseg.data import transforms as T
from semiseg.data.datasets import SegDataset
from semiseg.data.device import to_device


class Pre26SegDataset(SegDataset):
    """Today's pipeline with the worker's strong colour of before issue 26."""

    def _strong(self, img, rng, key):
        return key, T.to_chw(strong_colour(img, rng))


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


def index(mode: str, i: int):
    return 0 if mode == "val" else (0, i)


def throughput(dataset: SegDataset, seconds: float, first: int) -> float:
    """Samples per second of ``dataset[...]`` (sample seeds from ``first`` on: every round sees new draws)."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dataset[index(dataset.mode, first + n)]
        n += 1
    return n / (time.perf_counter() - start)


def device_ms(dataset: SegDataset, batch: int = 8, repeats: int = 5) -> float:
    """Milliseconds per image of ``to_device`` on the CPU for a batch of this dataset's samples (median)."""
    samples = default_collate([dataset[index(dataset.mode, i)] for i in range(batch)])
    samples.pop("index", None)
    to_device(samples, torch.device("cpu"), dataset.norm)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        to_device(samples, torch.device("cpu"), dataset.norm)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / batch * 1e3


def colour_ms(device: torch.device, crop: int, batch: int = 8, repeats: int = 7) -> tuple[float, float]:
    """Median ms per batch of the device-side strong colour: before issue 26 (per image), today (batched)."""
    rng = np.random.default_rng(1)
    w = torch.from_numpy(np.stack([natural_image(crop, crop, rng) for _ in range(batch)]))
    w = w.permute(0, 3, 1, 2).contiguous().to(device)
    params = torch.from_numpy(np.stack([T.draw_colour(rng) for _ in range(batch)]))
    out = []
    for fn in (device_colour, T.apply_colour):
        fn(w, params)  # warm-up
        times = []
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            fn(w, params)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        out.append(statistics.median(times) * 1e3)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per path per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (old, new, new+gpu, ...)")
    parser.add_argument("--only", choices=["pascal", "cityscapes"], help="one image size only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = [("pascal 500x375 jpg", lambda: make_sample(root, "voc", 375, 500, "jpg", 21), 21, 321),
                 ("cityscapes 2048x1024 png", lambda: make_sample(root, "city", 1024, 2048, "png", 19), 19, 801)]
        cases = [c for c in cases if args.only is None or c[0].startswith(args.only)]
        print(f"{'image':26s} {'mode':8s} {'crop':>5s} {'old/s':>7s} {'new/s':>7s} {'ratio':>6s} "
              f"{'new+gpu/s':>9s} {'ratio':>6s} {'pre26/s':>7s} {'new/pre26':>9s}  "
              f"{'to_device ms/img (new, new+gpu)':s}")
        for label, make, classes, crop in cases:
            entry = make()
            for mode in ("train_l", "train_u", "val"):
                kw = {"crop_size": crop}
                paths = {"old": LegacySegDataset(root, [entry], mode, classes, **kw),
                         "new": SegDataset(root, [entry], mode, classes, **kw),
                         "new+gpu": SegDataset(root, [entry], mode, classes, colour_on_device=True, **kw),
                         "pre26": Pre26SegDataset(root, [entry], mode, classes, **kw)}
                rates: dict[str, list[float]] = {name: [] for name in paths}
                for ds in paths.values():
                    ds[index(mode, 0)]  # warm-up
                for r in range(args.rounds):
                    for name, ds in paths.items():
                        rates[name].append(throughput(ds, args.seconds, first=1 + 10_000 * r))
                med = {name: statistics.median(v) for name, v in rates.items()}
                moved = f"{device_ms(paths['new']):.2f}, {device_ms(paths['new+gpu']):.2f}"
                print(f"{label:26s} {mode:8s} {crop if mode != 'val' else '-':>5} {med['old']:7.1f} "
                      f"{med['new']:7.1f} {med['new'] / med['old']:5.2f}x {med['new+gpu']:9.1f} "
                      f"{med['new+gpu'] / med['old']:5.2f}x {med['pre26']:7.1f} {med['new'] / med['pre26']:8.2f}x  "
                      f"{moved}", flush=True)
        devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        print(f"\n{'strong colour, batch of 8':26s} {'device':8s} {'crop':>5s} {'pre26 ms':>9s} {'new ms':>8s} "
              f"{'new/pre26':>9s}")
        for device in devices:
            for _, _, _, crop in cases:
                before, after = colour_ms(device, crop)
                print(f"{'':26s} {device.type:8s} {crop:5d} {before:9.2f} {after:8.2f} {after / before:8.2f}x",
                      flush=True)


if __name__ == "__main__":
    main()
