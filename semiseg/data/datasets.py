"""Dataset registry, split-list reading and the segmentation dataset of spec §1.1–1.2."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from PIL import Image

from semiseg.data import transforms as T
from semiseg.errors import DataError
from semiseg.registry import Registry

PROJECT_SPLITS = Path(__file__).resolve().parents[2] / "splits"


@dataclass(frozen=True)
class DatasetSpec:
    """What the engine needs to know about a dataset: classes, where it lives, how to prepare it."""

    name: str
    classes: tuple[str, ...]
    default_root: str
    layout_hint: str
    prepare: Callable[[Path], Path] | None = None  # e.g. generate the built-in data on first use
    palette: tuple[tuple[int, int, int], ...] = field(default=())

    @property
    def num_classes(self) -> int:
        return len(self.classes)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _prepare_demo(root: Path) -> Path:
    from semiseg.data.demo import ensure_demo

    return ensure_demo(root)


def _register_builtin() -> None:
    from semiseg.data.demo import DEMO_CLASSES, DEMO_PALETTE

    DATASETS.register("demo")(DatasetSpec(
        "demo", tuple(DEMO_CLASSES), "data/demo", "generated on first use", _prepare_demo, tuple(DEMO_PALETTE)))
    DATASETS.register("pascal")(DatasetSpec(
        "pascal",
        ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
         "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train",
         "tv/monitor"),
        "data/pascal", "JPEGImages/<id>.jpg and SegmentationClass/<id>.png"))


_register_builtin()


def dataset_root(spec: DatasetSpec, root: str) -> Path:
    """The dataset folder (prepared if the dataset knows how); a clear error when it is missing."""
    path = Path(root or spec.default_root).expanduser().resolve()
    if spec.prepare is not None:
        return spec.prepare(path)
    if not path.is_dir():
        raise DataError(
            f"dataset '{spec.name}': root folder {path} does not exist; set data.root to the folder "
            f"holding {spec.layout_hint}")
    return path


def split_file(root: Path, dataset: str, split: str, kind: str) -> Path | None:
    """Locate ``<split>/<kind>.txt`` (or ``val.txt`` for kind 'val') under the dataset root or ``splits/``."""
    rel = Path("val.txt") if kind == "val" else Path(split) / f"{kind}.txt"
    for base in (root / "splits", PROJECT_SPLITS / dataset):
        if (base / rel).is_file():
            return base / rel
    return None


def read_split(path: Path) -> list[tuple[str, str]]:
    """Parse a two-column split file (image path, mask path); a missing trailing newline is fine."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{path}:{number}: expected '<image> <mask>', got {line!r}")
        entries.append((parts[0], parts[1]))
    return entries


def load_split(root: Path, dataset: str, split: str, kind: str, required: bool = True) -> list[tuple[str, str]]:
    path = split_file(root, dataset, split, kind)
    if path is None:
        if not required:
            return []
        where = f"{root / 'splits'} or {PROJECT_SPLITS / dataset}"
        raise DataError(f"dataset '{dataset}': no {kind} list for split '{split}' under {where}")
    return read_split(path)


def read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot read image {path} (missing or corrupt)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_mask(path: Path, num_classes: int) -> np.ndarray:
    """Read a class-index PNG (palette or grayscale); class ids must be < num_classes or 255."""
    try:
        with Image.open(path) as im:
            mask = np.array(im)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read mask {path} ({exc})") from None
    if mask.ndim != 2:
        raise DataError(f"mask {path} has shape {mask.shape}; expected a single-channel class-index image")
    valid = mask[mask != T.IGNORE]
    if valid.size and int(valid.max()) >= num_classes:
        raise DataError(f"mask {path} holds class id {int(valid.max())}; valid ids are 0..{num_classes - 1} and 255")
    return mask.astype(np.uint8)


class SegDataset(torch.utils.data.Dataset):
    """Samples of one split list in one mode: ``train_l``, ``train_u``, ``train_u_ood`` or ``val``.

    Training modes are indexed by ``(index, seed)`` pairs from a seeded sampler, so every sample's
    augmentation is reproducible; ``val`` is indexed by plain integers. ``train_u_ood`` (SemiOVS) reads
    precomputed pseudo-label masks: labeled geometry (mask pad 255), then ``ign`` = 255 on padding
    (where those mask pixels become 0), plus two strong views.
    """

    def __init__(self, root: Path, entries: list[tuple[str, str]], mode: str, num_classes: int,
                 crop_size: int = 0, scale_range: tuple[float, float] = (0.5, 2.0)) -> None:
        assert mode in ("train_l", "train_u", "train_u_ood", "val")
        self.root, self.entries, self.mode = root, entries, mode
        self.num_classes, self.crop_size, self.scale_range = num_classes, crop_size, tuple(scale_range)

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img_rel, mask_rel = self.entries[index]
        img = read_image(self.root / img_rel)
        mask = read_mask(self.root / mask_rel, self.num_classes)
        if mask.shape != img.shape[:2]:
            raise DataError(f"mask {self.root / mask_rel} is {mask.shape[1]}x{mask.shape[0]} but image "
                            f"{self.root / img_rel} is {img.shape[1]}x{img.shape[0]}")
        return img, mask

    def __getitem__(self, item):
        if self.mode == "val":
            img, mask = self._load(item)
            return {"img": T.normalize(img), "mask": T.to_long(mask), "index": item}
        index, seed = item
        rng = np.random.default_rng(seed)
        img, mask = self._load(index)
        img, mask = T.random_rescale(img, mask, rng, self.scale_range)
        pad = T.PAD_SENTINEL if self.mode == "train_u" else T.IGNORE
        img, mask = T.pad_and_crop(img, mask, self.crop_size, rng, mask_pad=pad)
        img, mask = T.random_hflip(img, mask, rng)
        if self.mode == "train_l":
            return {"img": T.normalize(img), "mask": T.to_long(mask)}
        if self.mode == "train_u_ood":
            ign = np.where(mask == T.IGNORE, T.IGNORE, 0).astype(np.uint8)
            return {"w": T.normalize(img), "mask": T.to_long(np.where(ign == T.IGNORE, 0, mask)),
                    "s1": T.normalize(T.strong_colour(img, rng)), "s2": T.normalize(T.strong_colour(img, rng)),
                    "ign": T.to_long(ign)}
        ign = np.where(mask == T.PAD_SENTINEL, T.IGNORE, 0).astype(np.uint8)
        s1 = T.strong_colour(img, rng)
        box1 = T.cutmix_box(self.crop_size, rng)
        s2 = T.strong_colour(img, rng)
        box2 = T.cutmix_box(self.crop_size, rng)
        return {"w": T.normalize(img), "s1": T.normalize(s1), "s2": T.normalize(s2), "ign": T.to_long(ign),
                "box1": torch.from_numpy(box1).bool(), "box2": torch.from_numpy(box2).bool()}
