"""Mask converters from the official annotation formats to the class-index PNGs of docs/methods.md §1.1.

- SBD ``cls/<id>.mat`` (``GTcls.Segmentation``, 0..20) read with scipy, merged with VOC's
  ``SegmentationClass`` PNGs (0..20, 255 void), VOC's mask winning where both exist.
- Cityscapes ``*_gtFine_labelIds.png`` → ``*_gtFine_labelTrainIds.png`` with cityscapesscripts' label table.
- COCO instances JSON → 81-class masks with pycocotools (see :func:`coco_semantic_mask` for the exact rules).
- ADE20K raw annotations (0 = unlabeled, 1..150) → reduced 0..149, 255 (never twice).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from semiseg.constants import IGNORE
from semiseg.data import catalog
from semiseg.errors import DataError, UserError

_VOC_PALETTE = [v for colour in catalog.voc_palette(256) for v in colour]


def write_index_png(path: Path, mask: np.ndarray, palette: bool = False) -> None:
    """Write a uint8 class-index mask (as a palette PNG with the VOC colours when ``palette``), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(mask.astype(np.uint8), mode="L")
    if palette:
        image = image.convert("P")
        image.putpalette(_VOC_PALETTE)
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)


def _optional(module: str, extra: str = "data"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"this step needs {module.split('.')[0]} (pip install 'semiseg[{extra}]')") from None


# --------------------------------------------------------------------------- Pascal (VOC + SBD)

def sbd_mask(source, path: str) -> np.ndarray:
    """The class mask of an SBD ``cls/<id>.mat`` file or stream (``GTcls.Segmentation``: 0 background, 1..20)."""
    loadmat = _optional("scipy.io").loadmat
    try:
        mat = loadmat(source, squeeze_me=True, struct_as_record=False)
        mask = np.asarray(mat["GTcls"].Segmentation)
    except (KeyError, AttributeError, ValueError, OSError, TypeError) as exc:
        raise DataError(f"SBD mask {path} has no GTcls.Segmentation array ({exc})") from None
    if mask.ndim != 2 or mask.size == 0 or mask.max() > 20 or mask.min() < 0:
        raise DataError(f"SBD mask {path}: expected a 2-D array of class ids 0..20, got shape {mask.shape}")
    return mask.astype(np.uint8)


# --------------------------------------------------------------------------- Cityscapes

def cityscapes_train_ids() -> np.ndarray:
    """A 256-entry lookup labelId → trainId from cityscapesscripts' label table (ignored ids → 255)."""
    labels = _optional("cityscapesscripts.helpers.labels", "cityscapes").labels
    table = np.full(256, IGNORE, dtype=np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < 255:
            table[label.id] = label.trainId
    return table


def cityscapes_mask(label_ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    return table[label_ids]


# --------------------------------------------------------------------------- COCO

def coco_category_map(categories: list[dict]) -> dict[int, int]:
    """COCO category id → class index 1..80, in ascending category id order (the official class order); the
    names must be :data:`catalog.COCO_CLASSES`."""
    ordered = sorted(categories, key=lambda c: c["id"])
    names = tuple(c["name"] for c in ordered)
    if names != catalog.COCO_CLASSES[1:]:
        raise DataError(f"the instances file's categories are not the 80 COCO classes in the official order "
                        f"(got {len(names)}: {names[:3]}...)")
    return {c["id"]: index for index, c in enumerate(ordered, 1)}


def coco_semantic_mask(coco, image_id: int, category_map: dict[int, int]) -> np.ndarray:
    """The 81-class mask of one image from its instance annotations (``coco`` a pycocotools ``COCO``).

    Exact rules: every pixel starts as background (0). Crowd regions (``iscrowd=1``, RLE) are painted 255
    (ignore) first. The non-crowd instances (polygons or RLE) are then painted with their class index in order of
    decreasing annotated ``area``, so where instances overlap the smaller one wins, and an instance pixel inside
    a crowd region keeps its class. Ties in area keep the file's annotation order.
    """
    info = coco.imgs[image_id]
    mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
    for ann in anns:
        if ann.get("iscrowd"):
            mask[coco.annToMask(ann).astype(bool)] = IGNORE
    for ann in sorted((a for a in anns if not a.get("iscrowd")), key=lambda a: -a["area"]):
        mask[coco.annToMask(ann).astype(bool)] = category_map[ann["category_id"]]
    return mask


# --------------------------------------------------------------------------- ADE20K

def ade_reduce(raw: np.ndarray, path: Path) -> np.ndarray:
    """Raw ADEChallengeData2016 ids (0 unlabeled, 1..150) → 0..149 with 255 ignore. A mask that holds 255 is
    already reduced and is refused (never reduce twice)."""
    if raw.size and raw.max() > 150:
        raise DataError(f"ADE20K annotation {path} holds id {int(raw.max())}: it is not a raw annotation "
                        f"(0..150); already reduced masks must not be reduced again")
    out = raw.astype(np.int16) - 1
    out[out < 0] = IGNORE
    return out.astype(np.uint8)
