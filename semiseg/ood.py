"""Write or check SemiOVS out-of-distribution pseudo-labels: ``semiseg ood {{predict,check}} ...``.

SemiOVS trains on a second unlabeled source: OOD images with fixed pseudo-label masks, made once,
offline (the paper uses the open-vocabulary model SED, which we cannot ship). The format, read by
``semiovs.ood_root`` / ``semiovs.ood_list``:

  <ood_root>/<image path>        RGB images (any format OpenCV reads), any size
  <ood_root>/<mask path>         single-channel PNG of class indices 0..C-1 of the TARGET dataset (palette or
                                 grayscale), same size as its image; 255 = ignore (OVS masks have none)
  <ood_root>/<list>              one "<image path> <mask path>" line per image, paths relative to <ood_root>

``predict`` labels images with one of our checkpoints (best.pth / last.pth of any run: the run's config is
inside); ``check`` validates masks made elsewhere (e.g. by SED) against a dataset's class count.

examples:
  {prog} predict --checkpoint runs/ab12cd34ef/best.pth --root data/coco_ood --images images
  {prog} check --root data/coco_ood --list ood.txt --dataset pascal
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semiseg.checkpoint import load_weights
from semiseg.cli import prog, run_cli
from semiseg.config import config_from_dict
from semiseg.data import transforms as T
from semiseg.data.datasets import DATASETS, read_split
from semiseg.data.io import MaskCodec, read_image, read_pair
from semiseg.errors import DataError
from semiseg.methods import METHODS
from semiseg.models import build_model
from semiseg.runtime import pick_device

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def list_images(root: Path, images: str) -> list[str]:
    """Image paths relative to ``root``: every image file in the folder ``root/images``, or the first column
    of the list file ``images`` (absolute or relative to ``root``)."""
    path = Path(images) if Path(images).is_absolute() else root / images
    if path.is_dir():
        found = sorted(p.relative_to(root).as_posix() for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"--images: folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} files")
        return found
    if not path.is_file():
        raise DataError(f"--images: {path} is neither a folder nor a list file")
    names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DataError(f"--images: list file {path} is empty")
    return names


def load_model(checkpoint: Path, device: torch.device) -> tuple[torch.nn.Module, str]:
    """The model of one of our checkpoints (eval mode) and its dataset name."""
    weights = load_weights(checkpoint)
    if weights.config is None:
        raise DataError(f"{checkpoint} holds no run config (use a run's best.pth or last.pth)")
    cfg = config_from_dict(weights.config)
    cfg.model.pretrained = ""  # the full weights come from the file
    spec = DATASETS.get(cfg.data.dataset)
    model = build_model(cfg, spec.num_classes, **METHODS.get(cfg.method).model_kwargs)  # weights: the file's
    model.load_state_dict(weights.state_dict)
    return model.to(device).eval(), spec.name


def write_mask(path: Path, mask: np.ndarray, palette: tuple[tuple[int, int, int], ...]) -> None:
    """A class-index PNG; a palette ('P') image when the dataset has a palette."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(mask.astype(np.uint8), mode="L")
    if palette:
        image = image.convert("P")
        image.putpalette([v for colour in palette for v in colour])
    image.save(path)


@torch.no_grad()
def predict(checkpoint: Path, root: Path, images: str, masks: str, list_name: str, device: str) -> Path:
    """Label every image with the checkpoint's model (whole image, native size, argmax); write masks and the list.

    All or nothing: the masks go to a temporary folder beside ``masks`` and are moved into it, and the list
    written, only once every image is labeled (an unreadable image leaves nothing behind)."""
    names = list_images(root, images)
    out, mask_dir = root / list_name, root / masks
    if out.is_dir():
        raise DataError(f"--list {out} is a folder; give the list file to write, e.g. ood.txt")
    if mask_dir.exists() and not mask_dir.is_dir():
        raise DataError(f"--masks {mask_dir} is a file; give the folder to write the masks to, e.g. pseudo_labels")
    if not checkpoint.is_file():
        raise DataError(f"--checkpoint {checkpoint} does not exist (give a run's best.pth or last.pth)")
    dev = pick_device(device)
    model, dataset = load_model(checkpoint, dev)
    palette = DATASETS.get(dataset).palette
    lines, staging = [], mask_dir.with_name(f".{mask_dir.name}.{os.getpid()}.tmp")
    try:
        for rel in names:
            img = read_image(root / rel)
            pred = model(T.normalize(img).unsqueeze(0).to(dev)).argmax(1)[0].cpu().numpy()
            name = Path(rel).with_suffix(".png").name
            write_mask(staging / name, pred, palette)
            lines.append(f"{rel} {(Path(masks) / name).as_posix()}\n")
        mask_dir.mkdir(parents=True, exist_ok=True)
        for mask in staging.iterdir():
            os.replace(mask, mask_dir / mask.name)
        tmp_list = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp_list.write_text("".join(lines))
        os.replace(tmp_list, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def check(root: Path, list_name: str, num_classes: int) -> np.ndarray:
    """Validate every (image, mask) pair of the list; returns the per-class pixel counts (last = 255)."""
    path = Path(list_name) if Path(list_name).is_absolute() else root / list_name
    if not path.is_file():
        raise DataError(f"--list: {path} does not exist")
    counts = np.zeros(num_classes + 1, np.int64)
    entries = read_split(path)
    if not entries:
        raise DataError(f"{path} lists no images")
    for image_rel, mask_rel in entries:
        _, mask = read_pair(root, image_rel, mask_rel, MaskCodec(num_classes))
        hist = np.bincount(mask.ravel(), minlength=256)
        counts[:num_classes] += hist[:num_classes]
        counts[num_classes] += hist[T.IGNORE]
    return counts


def build_parser() -> argparse.ArgumentParser:
    name = prog("ood", "semiseg.ood")
    parser = argparse.ArgumentParser(prog=name, description=__doc__.format(prog=name),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="write pseudo-label masks and the list with one of our checkpoints")
    p.add_argument("--checkpoint", required=True, type=Path, help="a run's best.pth or last.pth")
    p.add_argument("--root", required=True, type=Path, help="the OOD root folder (semiovs.ood_root)")
    p.add_argument("--images", default="images",
                   help="folder of images, or a list file whose first column names them (relative to --root)")
    p.add_argument("--masks", default="pseudo_labels", help="mask folder to write, relative to --root")
    p.add_argument("--list", default="ood.txt", help="list file to write, relative to --root (semiovs.ood_list)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    c = sub.add_parser("check", help="validate an OOD list and its masks (e.g. made by an OVS model)")
    c.add_argument("--root", required=True, type=Path, help="the OOD root folder")
    c.add_argument("--list", default="ood.txt", help="the list file, relative to --root")
    c.add_argument("--dataset", required=True, help=f"target dataset, one of: {', '.join(DATASETS.names())}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.root.is_dir():
        raise DataError(f"--root: folder {args.root} does not exist")
    if args.command == "predict":
        out = predict(args.checkpoint, args.root, args.images, args.masks, args.list, args.device)
        print(f"wrote {len(out.read_text().splitlines())} pseudo-labels and {out}")
        return 0
    spec = DATASETS.get(args.dataset)
    if spec.from_root is not None:
        named = ", ".join(n for n in DATASETS.names() if DATASETS.get(n).from_root is None)
        raise DataError(f"--dataset {args.dataset}: its classes are read from its data root (classes.yaml or "
                        f"classes.txt), which the OOD check does not know; give a named dataset: {named}")
    counts = check(args.root, args.list, spec.num_classes)
    total = max(int(counts.sum()), 1)
    shares = ", ".join(f"{name} {100 * n / total:.1f}%" for name, n in zip(spec.classes, counts) if n)
    print(f"ok: every mask fits {args.dataset} ({spec.num_classes} classes); pixels: {shares}; "
          f"ignore {100 * counts[-1] / total:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
