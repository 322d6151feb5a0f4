"""Dataset registry, split-list reading and the segmentation dataset of docs/methods.md §1.1–1.2.

Each dataset is one :class:`DatasetSpec` row (class names, palette, normalisation, on-disk layout,
where its full train list comes from, official split sizes, default evaluation protocol); the
training/validation pipeline is the same for all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from semiseg.data import catalog
from semiseg.data import transforms as T
from semiseg.constants import IMAGENET_MEAN, IMAGENET_STD
from semiseg.data.demo import DEMO, PRETEXT, ensure_demo
from semiseg.data.io import MaskCodec, read_image, read_pair
from semiseg.data.lists import read_split
from semiseg.errors import DataError
from semiseg.registry import Registry
from semiseg import workspace
from semiseg.workspace import splits_dir



@dataclass(frozen=True)
class Listing:
    """How to enumerate a full image set from the folder tree (used when no train list exists).

    ``glob`` finds images under the root; ``pattern`` (a regex with named groups) parses each relative
    path; ``template`` formats the groups into the split line ``"<image> <mask>"``.
    """

    glob: str
    pattern: str
    template: str

    def entries(self, root: Path) -> list[tuple[str, str]]:
        regex = re.compile(self.pattern)
        out = []
        for path in sorted(root.glob(self.glob)):
            match = regex.fullmatch(path.relative_to(root).as_posix())
            if match:
                image, mask = self.template.format(**match.groupdict()).split(" ")
                out.append((image, mask))
        return out


@dataclass(frozen=True)
class DatasetSpec:
    """What the engine needs to know about a dataset: classes, where it lives, how to read and evaluate it."""

    name: str
    classes: tuple[str, ...]
    default_root: str
    layout_hint: str
    prepare: Callable[[Path], Path] | None = None  # e.g. generate the built-in data on first use
    palette: tuple[tuple[int, int, int], ...] = field(default=())
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: appended to "class id too large" errors (e.g. which mask files the dataset expects)
    mask_hint: str = ""
    #: split-list files (relative to a splits folder) holding the full train set, first found wins
    train_lists: tuple[str, ...] = ()
    #: fallback: enumerate the train set from the folder tree
    train_listing: Listing | None = None
    #: labeled-pool lists of named protocols, for ``semiseg.splits make --protocol``
    protocols: dict[str, str] = field(default_factory=dict)
    #: evaluation protocol chosen by ``eval.mode=auto`` (docs/methods.md §1.6)
    eval_mode: str = "original"
    #: reads dataset-specific metadata from the root (the ``folder`` dataset's class file)
    from_root: Callable[["DatasetSpec", Path], "DatasetSpec"] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def official_counts(self) -> dict[str, int]:
        return catalog.OFFICIAL_COUNTS.get(self.name, {})

    def codec(self, encoding: str = "index") -> MaskCodec:
        return MaskCodec(self.num_classes, encoding, self.mask_hint)


DATASETS: Registry[DatasetSpec] = Registry("dataset")




def _folder_meta(spec: DatasetSpec, root: Path) -> DatasetSpec:
    """Class names (and optional palette/mean/std) of a ``folder`` dataset from classes.yaml or classes.txt."""
    yml, txt = root / "classes.yaml", root / "classes.txt"
    if yml.is_file():
        try:
            meta = yaml.safe_load(yml.read_text())
        except yaml.YAMLError as exc:
            raise DataError(f"{yml} is not valid YAML: {exc}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("classes"), list):
            raise DataError(f"{yml} must be a mapping with a 'classes' list (and optional palette, mean, std)")
        unknown = set(meta) - {"classes", "palette", "mean", "std"}
        if unknown:
            raise DataError(f"{yml}: unknown keys {sorted(unknown)}; valid: classes, palette, mean, std")
    elif txt.is_file():
        meta = {"classes": [line.strip() for line in txt.read_text().splitlines() if line.strip()]}
    else:
        raise DataError(f"folder dataset {root}: no classes.yaml or classes.txt (one class name per line, "
                        f"in index order)")
    classes = tuple(str(c) for c in meta["classes"])
    if not 1 <= len(classes) <= 255 or len(set(classes)) != len(classes):
        raise DataError(f"folder dataset {root}: need 1..255 distinct class names, got {list(classes)}")
    palette = tuple(tuple(int(v) for v in c) for c in meta.get("palette") or catalog.voc_palette(len(classes)))
    if len(palette) != len(classes) or any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in palette):
        raise DataError(f"{yml}: 'palette' must hold one [r, g, b] (0..255) per class ({len(classes)})")
    stats = {}
    for key in ("mean", "std"):
        if key in meta:
            value = meta[key]
            if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)
                    and (key == "mean" or all(v > 0 for v in value))):
                raise DataError(f"{yml}: '{key}' must be three numbers (RGB, images scaled to 0..1), got {value!r}")
            stats[key] = tuple(float(v) for v in value)
    return replace(spec, classes=classes, palette=palette, **stats)


_PASCAL_PAIR = "JPEGImages/{id}.jpg SegmentationClass/{id}.png"
_SPECS = (
    DatasetSpec(
        "pascal", catalog.PASCAL_CLASSES, "data/pascal",
        "JPEGImages/<id>.jpg and SegmentationClass/<id>.png (the VOC+SBD 'SegmentationClassAug' masks, 0..20, "
        "255 = void)", palette=catalog.voc_palette(21),
        mask_hint="Pascal masks are class-index PNGs 0..20 (the SBD-augmented SegmentationClassAug set), "
                  "not colour renderings",
        train_lists=("train_aug.txt", "all/labeled.txt"),
        protocols={"hq": "1464/labeled.txt", "blended": "train_aug.txt"}),
    DatasetSpec(
        "cityscapes", catalog.CITYSCAPES_CLASSES, "data/cityscapes",
        "leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png and "
        "gtFine/{train,val}/<city>/<name>_gtFine_labelTrainIds.png", palette=catalog.CITYSCAPES_PALETTE,
        mask_hint="use the *_gtFine_labelTrainIds.png masks (19 train ids, made by cityscapesscripts' "
                  "createTrainIdLabelImgs), not *_gtFine_labelIds.png",
        train_lists=("all/train.txt", "train.txt"),
        train_listing=Listing("leftImg8bit/train/*/*_leftImg8bit.png",
                              r"leftImg8bit/train/(?P<city>[^/]+)/(?P<name>.+)_leftImg8bit\.png",
                              "leftImg8bit/train/{city}/{name}_leftImg8bit.png "
                              "gtFine/train/{city}/{name}_gtFine_labelTrainIds.png"),
        eval_mode="sliding_window"),
    DatasetSpec(
        "ade20k", catalog.ADE20K_CLASSES, "data/ade20k",
        "images/{training,validation}/ADE_*.jpg and annotations/{training,validation}/ADE_*.png",
        palette=catalog.voc_palette(150),
        mask_hint="raw ADEChallengeData2016 annotations (0 = unlabeled, 1..150) need data.mask_encoding="
                  "reduce_zero; the pre-reduced UniMatch V2 annotations (0..149, 255) need 'index'",
        train_lists=("all/labeled.txt", "train.txt"),
        train_listing=Listing("images/training/*.jpg", r"images/training/(?P<id>[^/]+)\.jpg",
                              "images/training/{id}.jpg annotations/training/{id}.png")),
    DatasetSpec(
        "coco", catalog.COCO_CLASSES, "data/coco",
        "train2017/<12-digit id>.jpg, val2017/<id>.jpg and masks/<id>.png (the UniMatch 81-class masks, "
        "0 = background)", palette=catalog.voc_palette(81),
        mask_hint="COCO masks are the UniMatch semantic masks with 81 classes (0 = background, 255 = ignore)",
        train_lists=("train.txt", "all/train.txt"),
        train_listing=Listing("train2017/*.jpg", r"train2017/(?P<id>\d+)\.jpg",
                              "train2017/{id}.jpg masks/{id}.png")),
    DatasetSpec(
        "pascal_context", catalog.PASCAL_CONTEXT_CLASSES, "data/pascal_context",
        "JPEGImages/<id>.jpg (VOC2010) and SegmentationClassContext60/{train,val}/<id>.png",
        palette=catalog.voc_palette(60),
        mask_hint="Pascal Context masks hold the 60-class ids (0 = background, 255 = ignore)",
        train_lists=("train.txt",),
        train_listing=Listing("SegmentationClassContext60/train/*.png",
                              r"SegmentationClassContext60/train/(?P<id>[^/]+)\.png",
                              "JPEGImages/{id}.jpg SegmentationClassContext60/train/{id}.png")),
    DatasetSpec(
        "folder", ("background",), "data/folder",
        "classes.yaml (or classes.txt), images/<name>.<ext>, masks/<name>.png and splits/<split>/labeled.txt, "
        "splits/<split>/unlabeled.txt, splits/val.txt",
        train_lists=("train.txt", "all/labeled.txt"),
        train_listing=Listing("images/*", r"images/(?P<name>[^/]+)\.(?P<ext>jpg|jpeg|png|bmp|tif|tiff)",
                              "images/{name}.{ext} masks/{name}.png"),
        from_root=_folder_meta),
)


def _register_builtin() -> None:
    for scenes in (DEMO, PRETEXT):
        DATASETS.register(scenes.name)(DatasetSpec(
            scenes.name, scenes.classes, f"data/{scenes.name}", "generated on first use",
            lambda root, scenes=scenes: ensure_demo(root, scenes=scenes), scenes.palette,
            train_lists=("all/labeled.txt",)))
    for spec in _SPECS:
        DATASETS.register(spec.name)(spec)


_register_builtin()


def dataset_root(spec: DatasetSpec, root: str) -> Path:
    """The dataset folder (prepared if the dataset knows how); a clear error when it is missing. An empty
    ``root`` is the dataset's default location in the workspace (e.g. ``data/demo``)."""
    path = (Path(root) if root else workspace.path(spec.default_root)).expanduser().resolve()
    if spec.prepare is not None:
        return spec.prepare(path)
    if not path.is_dir():
        raise DataError(
            f"dataset '{spec.name}': root folder {path} does not exist; set data.root to the folder "
            f"holding {spec.layout_hint}")
    return path


def open_dataset(name: str, root: str) -> tuple[DatasetSpec, Path]:
    """The registered spec of ``name`` completed from its root folder, and that folder."""
    spec = DATASETS.get(name)
    path = dataset_root(spec, root)
    return (spec.from_root(spec, path) if spec.from_root else spec), path


def _split_path(root: Path, dataset: str, rel: Path) -> Path | None:
    for base in (root / "splits", splits_dir() / dataset):
        if (base / rel).is_file():
            return base / rel
    return None


def split_file(root: Path, dataset: str, split: str, kind: str) -> Path | None:
    """Locate ``<split>/<kind>.txt`` (or ``val.txt`` for kind 'val') under the dataset root or ``splits/``."""
    return _split_path(root, dataset, Path("val.txt") if kind == "val" else Path(split) / f"{kind}.txt")


def load_split(root: Path, dataset: str, split: str, kind: str, required: bool = True) -> list[tuple[str, str]]:
    path = split_file(root, dataset, split, kind)
    if path is None:
        if not required:
            return []
        where = f"{root / 'splits'} or {splits_dir() / dataset}"
        raise DataError(f"dataset '{dataset}': no {kind} list for split '{split}' under {where}")
    return read_split(path)


def train_entries(root: Path, spec: DatasetSpec) -> tuple[list[tuple[str, str]], str]:
    """The full train set and where it came from: the first train list found, else the folder listing."""
    for rel in spec.train_lists:
        path = _split_path(root, spec.name, Path(rel))
        if path is not None:
            return read_split(path), str(path)
    if spec.train_listing is not None:
        entries = spec.train_listing.entries(root)
        if entries:
            return entries, f"{root}/{spec.train_listing.glob}"
    return [], ""


def unlabeled_entries(root: Path, spec: DatasetSpec, split: str,
                      labeled: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The split's unlabeled list; when it is absent (COCO), the train set minus the labeled images."""
    path = split_file(root, spec.name, split, "unlabeled")
    if path is not None:
        return read_split(path)
    train, source = train_entries(root, spec)
    if not train:
        return []
    taken = {image for image, _ in labeled}
    missing = taken - {image for image, _ in train}
    if missing:
        raise DataError(f"dataset '{spec.name}' split '{split}': {len(missing)} labeled images are not in the "
                        f"train set {source}, e.g. {sorted(missing)[0]}")
    return [entry for entry in train if entry[0] not in taken]


class SegDataset(torch.utils.data.Dataset):
    """Samples of one split list in one mode: ``train_l``, ``train_u``, ``train_u_ood`` or ``val``.

    Training modes are indexed by ``(index, seed)`` pairs from a seeded sampler, so every sample's
    augmentation is reproducible; ``val`` is indexed by plain integers. ``codec`` is a
    :class:`MaskCodec` (or just the class count, for index-encoded masks).

    Samples hold uint8 CHW images and uint8 masks (255 = ignore); :func:`semiseg.data.device.to_device`
    normalises them (with :attr:`norm`) and widens the masks on the training device. With
    ``colour_on_device`` the strong views are left to it too: a sample then holds each view's colour
    parameters (``c1``, ``c2``, see :func:`transforms.draw_colour`) instead of ``s1``, ``s2``.

    Unlabeled samples never open their mask: the ignore mask marks crop padding only, and GT pixels of
    unlabeled images are not used (docs/methods.md §1.2), so an all-zero dummy gives the same result (UniMatch V2).
    ``train_u_ood`` (SemiOVS) reads precomputed pseudo-label masks: labeled geometry (mask pad 255), then
    ``ign`` = 255 on padding (where those mask pixels become 0), plus two strong views.
    """

    def __init__(self, root: Path, entries: list[tuple[str, str]], mode: str, codec: MaskCodec | int,
                 crop_size: int = 0, scale_range: tuple[float, float] = (0.5, 2.0),
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 colour_on_device: bool = False) -> None:
        assert mode in ("train_l", "train_u", "train_u_ood", "val")
        self.root, self.entries, self.mode = root, entries, mode
        self.codec = codec if isinstance(codec, MaskCodec) else MaskCodec(codec)
        self.crop_size, self.scale_range = crop_size, tuple(scale_range)
        self.norm = (tuple(mean), tuple(std))
        self.colour_on_device = colour_on_device

    @property
    def num_classes(self) -> int:
        return self.codec.num_classes

    def __len__(self) -> int:
        return len(self.entries)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        img_rel, mask_rel = self.entries[index]
        if self.mode == "train_u":
            img = read_image(self.root / img_rel)
            return img, np.zeros(img.shape[:2], dtype=np.uint8)
        return read_pair(self.root, img_rel, mask_rel, self.codec)

    def _strong(self, img: np.ndarray, rng: np.random.Generator, key: str) -> tuple[str, torch.Tensor]:
        """One strong view (``s1``/``s2``), or its colour parameters (``c1``/``c2``) for the device."""
        if self.colour_on_device:
            return "c" + key[1], torch.from_numpy(T.draw_colour(rng))
        return key, T.to_chw(T.strong_colour(img, rng))

    def __getitem__(self, item):
        if self.mode == "val":
            img, mask = self._load(item)
            return {"img": T.to_chw(img), "mask": T.to_tensor(mask), "index": item}
        index, seed = item
        rng = np.random.default_rng(seed)
        img, mask = self._load(index)
        img, mask = T.random_rescale(img, mask, rng, self.scale_range)
        pad = T.PAD_SENTINEL if self.mode == "train_u" else T.IGNORE
        img, mask = T.pad_and_crop(img, mask, self.crop_size, rng, mask_pad=pad)
        img, mask = T.random_hflip(img, mask, rng)
        if self.mode == "train_l":
            return {"img": T.to_chw(img), "mask": T.to_tensor(mask)}
        if self.mode == "train_u_ood":
            padded = mask == T.IGNORE
            out = {"w": T.to_chw(img), "mask": T.to_tensor(np.where(padded, 0, mask).astype(np.uint8))}
            out.update([self._strong(img, rng, "s1"), self._strong(img, rng, "s2")])
            out["ign"] = T.to_tensor(np.where(padded, T.IGNORE, 0).astype(np.uint8))
            return out
        ign = np.where(mask == T.PAD_SENTINEL, T.IGNORE, 0).astype(np.uint8)
        out = {"w": T.to_chw(img)}
        out.update([self._strong(img, rng, "s1")])
        out["box1"] = T.to_tensor(T.cutmix_box(self.crop_size, rng))
        out.update([self._strong(img, rng, "s2")])
        out["box2"] = T.to_tensor(T.cutmix_box(self.crop_size, rng))
        out["ign"] = T.to_tensor(ign)
        return out
