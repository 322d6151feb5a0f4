"""Tiny fixture datasets written in each real on-disk layout (docs/methods.md §1.1), for the dataset tests.

Each layout writes a handful of small random images and class-index masks (with some 255 pixels) and
the split lists the official repos ship (COCO: labeled and val only; Pascal Context: no unlabeled list).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

N_TRAIN, N_VAL, N_LABELED = 8, 3, 3


def _ids(name: str, split: str, n: int) -> list[str]:
    """Names in the dataset's own style (``{city}`` is filled in by the cityscapes layout)."""
    offset = 0 if split == "train" else 1000
    return [{"pascal": f"2007_{offset + i:06d}", "pascal_context": f"2008_{offset + i:06d}",
             "cityscapes": f"{'aachen' if split == 'train' else 'frankfurt'}_{offset + i:06d}_000019",
             "ade20k": f"ADE_{'train' if split == 'train' else 'val'}_{offset + i + 1:08d}",
             "coco": f"{offset + i + 1:012d}", "folder": f"{split}_{i:03d}"}[name] for i in range(n)]


def _paths(name: str, split: str, stem: str) -> tuple[str, str]:
    sub = {"train": "training", "val": "validation"}[split]
    city = stem.split("_")[0]
    return {
        "pascal": (f"JPEGImages/{stem}.jpg", f"SegmentationClass/{stem}.png"),
        "pascal_context": (f"JPEGImages/{stem}.jpg", f"SegmentationClassContext60/{split}/{stem}.png"),
        "cityscapes": (f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png",
                       f"gtFine/{split}/{city}/{stem}_gtFine_labelTrainIds.png"),
        "ade20k": (f"images/{sub}/{stem}.jpg", f"annotations/{sub}/{stem}.png"),
        "coco": (f"{split}2017/{stem}.jpg", f"masks/{stem}.png"),
        "folder": (f"images/{stem}.png", f"masks/{stem}.png"),
    }[name]


NUM_CLASSES = {"pascal": 21, "pascal_context": 60, "cityscapes": 19, "ade20k": 150, "coco": 81, "folder": 4}
SIZE = {"cityscapes": (32, 64)}  # (h, w); default below


def write_mask(path: Path, mask: np.ndarray, palette: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask, mode="L")
    if palette:  # VOC-style 'P' PNG: the stored indices are the class ids
        im = im.convert("P")
        im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    im.save(path)


def write_image(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def write_list(path: Path, entries: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(f"{a} {b}" for a, b in entries))  # no trailing newline, as some official lists


def build(name: str, root: Path, seed: int = 0, raw_ade: bool = True) -> Path:
    """Write the fixture dataset ``name`` under ``root``; ADE20K masks are raw (0 = unlabeled) by default."""
    rng = np.random.default_rng(seed)
    h, w = SIZE.get(name, (40, 56))
    classes = NUM_CLASSES[name]
    entries: dict[str, list[tuple[str, str]]] = {}
    for split, n in (("train", N_TRAIN), ("val", N_VAL)):
        entries[split] = []
        for stem in _ids(name, split, n):
            image_rel, mask_rel = _paths(name, split, stem)
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            mask = rng.integers(0, classes, (h, w), dtype=np.uint8)
            mask[: h // 4, : w // 4] = 255
            if name == "ade20k" and raw_ade:  # raw ADEChallengeData2016: 0 = unlabeled, 1..150
                mask = np.where(mask == 255, 0, mask + 1).astype(np.uint8)
            write_image(root / image_rel, img)
            write_mask(root / mask_rel, mask, palette=name in ("pascal", "folder"))
            entries[split].append((image_rel, mask_rel))
    labeled, unlabeled = entries["train"][:N_LABELED], entries["train"][N_LABELED:]
    split = "1_512" if name == "coco" else "1_16"
    write_list(root / "splits" / split / "labeled.txt", labeled)
    if name not in ("coco", "pascal_context"):  # those derive unlabeled = train minus labeled
        write_list(root / "splits" / split / "unlabeled.txt", unlabeled)
    write_list(root / "splits" / "val.txt", entries["val"])
    if name == "folder":
        (root / "classes.yaml").write_text("classes: [background, road, car, tree]\nmean: [0.5, 0.5, 0.5]\n"
                                           "std: [0.25, 0.25, 0.25]\n")
    return root
