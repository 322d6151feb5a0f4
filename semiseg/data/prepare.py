"""Download, verify, extract and convert a dataset into the layout of docs/methods.md §1.1.

``semiseg data prepare pascal|cityscapes|coco|ade20k|pascal_context --root DIR`` fetches the official archives
into ``DIR/downloads`` (verified, resumable: :mod:`semiseg.download`), extracts what the engine reads and
converts the masks (:mod:`semiseg.data.convert`). ``DIR/.semiseg-prepared.json`` is written last: a folder
without it was not prepared completely (a new run redoes the work). The split lists come separately:
``semiseg splits fetch <dataset> --root DIR``.
"""

from __future__ import annotations

import argparse
import getpass
import io
import json
import os
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from semiseg.cli import prog, run_cli
from semiseg.data import convert
from semiseg.download import CHECKSUMS_ENV, MIRROR_ENV, Settings, fetch_all, libraries
from semiseg.errors import DataError, UserError
from semiseg.sources import COCO_AUTHOR_MASKS, DATASET_ARCHIVES, Source

MARKER = ".semiseg-prepared.json"
CITYSCAPES_LOGIN = "https://www.cityscapes-dataset.com/login/"
CREDENTIAL_ENVS = ("CITYSCAPES_USERNAME", "CITYSCAPES_PASSWORD")
#: published disk needs (GiB): archives + what is extracted and converted
DISK_GB = {"pascal": 5.5, "cityscapes": 23, "coco": 40, "ade20k": 2, "pascal_context": 3}

EXAMPLES = """examples:
  semiseg data prepare pascal --root ~/data/pascal
  SEMISEG_MIRROR=http://mirror.local/semiseg semiseg data prepare coco --root /scratch/coco
  CITYSCAPES_USERNAME=me semiseg data prepare cityscapes --root ~/data/cityscapes   # asks the password
  semiseg splits fetch pascal --root ~/data/pascal          # then the official split lists
"""


def _write_member(data: io.BufferedIOBase, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        shutil.copyfileobj(data, out)


def _tar_members(path: Path) -> Iterator[tuple[str, Callable[[], io.BufferedIOBase]]]:
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile():
                    yield member.name, lambda m=member: tar.extractfile(m)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a readable tar archive ({exc})") from None


def _zip_members(path: Path) -> Iterator[tuple[str, Callable[[], io.BufferedIOBase]]]:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield info.filename, lambda i=info: archive.open(i)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc})") from None


def _read_png(data: io.BufferedIOBase, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data.read())) as image:
            return np.array(image)
    except OSError as exc:
        raise DataError(f"{name}: not a readable PNG ({exc})") from None


# --------------------------------------------------------------------------- datasets

def prepare_pascal(root: Path, archives: dict[str, Path]) -> dict[str, int]:
    """VOC 2012 ``JPEGImages`` and ``SegmentationClass`` (copied as published), then an SBD mask for every SBD
    image VOC has no mask for: the augmented set of 0..20/255 masks in ``SegmentationClass``."""
    voc, sbd = archives["voc2012/VOCtrainval_11-May-2012.tar"], archives["sbd/benchmark.tgz"]
    images, voc_masks = set(), set()
    for name, open_member in _tar_members(voc):
        folder, _, file_name = name.rpartition("/")
        if folder.endswith("VOC2012/JPEGImages") and file_name.endswith(".jpg"):
            _write_member(open_member(), root / "JPEGImages" / file_name)
            images.add(file_name[:-4])
        elif folder.endswith("VOC2012/SegmentationClass") and file_name.endswith(".png"):
            _write_member(open_member(), root / "SegmentationClass" / file_name)
            voc_masks.add(file_name[:-4])
    if not images:
        raise DataError(f"{voc} holds no VOCdevkit/VOC2012/JPEGImages/*.jpg: not the VOC 2012 trainval archive")
    sbd_masks = 0
    for name, open_member in _tar_members(sbd):
        folder, _, file_name = name.rpartition("/")
        if not (folder.endswith("dataset/cls") and file_name.endswith(".mat")):
            continue
        image_id = file_name[:-4]
        if image_id in voc_masks:
            continue  # VOC's own mask wins
        if image_id not in images:
            raise DataError(f"{sbd}: {name} has no image {image_id}.jpg in the VOC 2012 archive")
        mask = convert.sbd_mask(io.BytesIO(open_member().read()), f"{sbd}:{name}")
        convert.write_index_png(root / "SegmentationClass" / f"{image_id}.png", mask, palette=True)
        sbd_masks += 1
    if not sbd_masks and not voc_masks:
        raise DataError(f"no class masks found in {voc} and {sbd}")
    return {"images": len(images), "voc_masks": len(voc_masks), "sbd_masks": sbd_masks}


def prepare_cityscapes(root: Path, archives: dict[str, Path]) -> dict[str, int]:
    """``leftImg8bit/{train,val}`` as published; ``gtFine/{train,val}/*_gtFine_labelIds.png`` →
    ``*_gtFine_labelTrainIds.png`` through cityscapesscripts' label table (the test split has no labels)."""
    table = convert.cityscapes_train_ids()
    counts = {"images": 0, "masks": 0}
    for name, open_member in _zip_members(archives["cityscapes/gtFine_trainvaltest.zip"]):
        parts = name.split("/")
        if len(parts) == 4 and parts[0] == "gtFine" and parts[1] in ("train", "val") \
                and parts[3].endswith("_gtFine_labelIds.png"):
            label_ids = _read_png(open_member(), name)
            target = root / "/".join(parts[:3]) / parts[3].replace("_labelIds.png", "_labelTrainIds.png")
            convert.write_index_png(target, convert.cityscapes_mask(label_ids, table))
            counts["masks"] += 1
    for name, open_member in _zip_members(archives["cityscapes/leftImg8bit_trainvaltest.zip"]):
        parts = name.split("/")
        if len(parts) == 4 and parts[0] == "leftImg8bit" and parts[1] in ("train", "val") \
                and parts[3].endswith("_leftImg8bit.png"):
            _write_member(open_member(), root / name)
            counts["images"] += 1
    if not counts["masks"] or not counts["images"]:
        raise DataError(f"the Cityscapes archives hold {counts['images']} train/val images and {counts['masks']} "
                        f"labelIds masks; expected leftImg8bit/<split>/<city>/*.png and gtFine/<split>/<city>/*.png")
    return counts


def _coco_author_masks(root: Path, archive: Path, images: set[str]) -> int:
    """Copy the authors' ``<12-digit id>.png`` masks (whatever folder the archive nests them in) to ``masks/``,
    each checked to hold ids 0..80 and 255 only; every extracted image must get its mask."""
    found = set()
    for name, open_member in _zip_members(archive):
        stem = name.rsplit("/", 1)[-1][:-4]
        if not (name.endswith(".png") and len(stem) == 12 and stem.isdigit()):
            continue
        data = open_member().read()
        mask = _read_png(io.BytesIO(data), name)
        bad = mask[(mask > 80) & (mask != 255)]
        if mask.ndim != 2 or bad.size:
            raise DataError(f"{archive}: mask {name} is not an 81-class index mask (ids 0..80 and 255)")
        _write_member(io.BytesIO(data), root / "masks" / f"{stem}.png")
        found.add(stem)
    missing = images - found
    if missing:
        raise DataError(f"{archive} has no mask for {len(missing)} of the {len(images)} images, e.g. "
                        f"{min(missing)}.png; prepare with --coco-masks instances to make them from the annotations")
    return len(found)


def prepare_coco(root: Path, archives: dict[str, Path]) -> dict[str, int]:
    """``train2017/``, ``val2017/`` as published; ``masks/<id>.png`` (81 classes, flat): the authors' released
    masks when their archive was fetched, else made from the instances annotations with pycocotools (rules:
    :func:`semiseg.data.convert.coco_semantic_mask`)."""
    counts, images = {"images": 0, "masks": 0}, set()
    for key in ("coco/train2017.zip", "coco/val2017.zip"):
        for name, open_member in _zip_members(archives[key]):
            parts = name.split("/")
            if len(parts) == 2 and parts[0] in ("train2017", "val2017") and parts[1].endswith(".jpg"):
                _write_member(open_member(), root / name)
                images.add(parts[1][:-4])
    counts["images"] = len(images)
    if COCO_AUTHOR_MASKS.key in archives:
        counts["masks"] = _coco_author_masks(root, archives[COCO_AUTHOR_MASKS.key], images)
        return counts
    coco_api = convert._optional("pycocotools.coco").COCO
    annotations = {}
    for name, open_member in _zip_members(archives["coco/annotations_trainval2017.zip"]):
        if name in ("annotations/instances_train2017.json", "annotations/instances_val2017.json"):
            _write_member(open_member(), root / name)
            annotations[name] = root / name
    if len(annotations) != 2:
        raise DataError(f"{archives['coco/annotations_trainval2017.zip']} lacks annotations/instances_"
                        f"{{train,val}}2017.json (found {sorted(annotations)})")
    for path in annotations.values():
        coco = coco_api(str(path))
        category_map = convert.coco_category_map(coco.loadCats(coco.getCatIds()))
        for image_id, info in coco.imgs.items():
            stem = Path(info["file_name"]).stem
            convert.write_index_png(root / "masks" / f"{stem}.png",
                                    convert.coco_semantic_mask(coco, image_id, category_map))
            counts["masks"] += 1
            if counts["masks"] % 10000 == 0:
                print(f"{counts['masks']} COCO masks made", flush=True)
    return counts


def prepare_ade20k(root: Path, archives: dict[str, Path]) -> dict[str, int]:
    """``images/{training,validation}`` as published; ``annotations/{training,validation}`` stored reduced
    (0..149, 255 ignore: ``data.mask_encoding: index``), reduced here once from the raw annotations."""
    counts = {"images": 0, "masks": 0}
    for name, open_member in _zip_members(archives["ade20k/ADEChallengeData2016.zip"]):
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "ADEChallengeData2016" or parts[2] not in ("training", "validation"):
            continue
        target = root / "/".join(parts[1:])
        if parts[1] == "images" and parts[3].endswith(".jpg"):
            _write_member(open_member(), target)
            counts["images"] += 1
        elif parts[1] == "annotations" and parts[3].endswith(".png"):
            convert.write_index_png(target, convert.ade_reduce(_read_png(open_member(), name), Path(name)))
            counts["masks"] += 1
    if not counts["images"] or not counts["masks"]:
        raise DataError("the ADE20K archive holds no ADEChallengeData2016/{images,annotations}/{training,"
                        "validation}/ files")
    return counts


def prepare_pascal_context(root: Path, archives: dict[str, Path]) -> dict[str, int]:
    """VOC 2010 ``JPEGImages``; SemiOVS's released 60-class masks copied to ``SegmentationClassContext60/
    {train,val}/`` (whatever folder the archive nests them in), each checked to hold ids 0..59 and 255 only."""
    counts = {"images": 0, "masks": 0}
    for name, open_member in _tar_members(archives["voc2010/VOCtrainval_03-May-2010.tar"]):
        folder, _, file_name = name.rpartition("/")
        if folder.endswith("VOC2010/JPEGImages") and file_name.endswith(".jpg"):
            _write_member(open_member(), root / "JPEGImages" / file_name)
            counts["images"] += 1
    for name, open_member in _zip_members(archives["semiovs/ground_truth_pascal_context.zip"]):
        parts = name.split("/")
        if len(parts) < 2 or parts[-2] not in ("train", "val") or not parts[-1].endswith(".png"):
            continue
        data = open_member().read()
        mask = _read_png(io.BytesIO(data), name)
        bad = mask[(mask >= 60) & (mask != 255)]
        if mask.ndim != 2 or bad.size:
            raise DataError(f"Pascal Context mask {name}: expected one channel of ids 0..59 and 255, found "
                            f"{'id ' + str(int(bad.max())) if bad.size else f'shape {mask.shape}'}")
        _write_member(io.BytesIO(data), root / "SegmentationClassContext60" / parts[-2] / parts[-1])
        counts["masks"] += 1
    if not counts["images"] or not counts["masks"]:
        raise DataError(f"the Pascal Context archives hold {counts['images']} VOC2010 images and {counts['masks']} "
                        f"train/val masks; expected VOCdevkit/VOC2010/JPEGImages/*.jpg and .../{{train,val}}/*.png")
    return counts


PREPARERS: dict[str, Callable[[Path, dict[str, Path]], dict[str, int]]] = {
    "pascal": prepare_pascal, "cityscapes": prepare_cityscapes, "coco": prepare_coco, "ade20k": prepare_ade20k,
    "pascal_context": prepare_pascal_context}


def cityscapes_session(settings: Settings, prompt: bool):
    """A requests session logged in to the Cityscapes site, with credentials from ``CITYSCAPES_USERNAME`` /
    ``CITYSCAPES_PASSWORD`` or a prompt; they are sent to the site only, never printed or written."""
    _, requests = libraries()
    session = requests.Session()
    if settings.mirror:
        return session
    user, password = (os.environ.get(name, "") for name in CREDENTIAL_ENVS)
    if not (user and password):
        if not (prompt and sys.stdin.isatty()):
            raise UserError(f"Cityscapes needs your account: set {' and '.join(CREDENTIAL_ENVS)} or run in a "
                            f"terminal to be asked (register at https://www.cityscapes-dataset.com/register/)")
        user = user or input("Cityscapes user name: ")
        password = password or getpass.getpass("Cityscapes password: ")
    try:
        response = session.post(CITYSCAPES_LOGIN, data={"username": user, "password": password, "submit": "Login"},
                                timeout=60)
    except requests.RequestException as exc:
        raise DataError(f"cannot reach the Cityscapes login at {CITYSCAPES_LOGIN} ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise UserError(f"the Cityscapes login answered HTTP {response.status_code}: check the user name and password")
    return session  # a refused login shows up as a web page instead of the archive, which is never kept


COCO_MASKS = ("authors", "instances")


def archives_for(dataset: str, coco_masks: str = "authors") -> list[Source]:
    """The archives ``prepare`` fetches: COCO takes the authors' masks instead of the instances annotations
    unless ``coco_masks`` is ``instances``."""
    sources = list(DATASET_ARCHIVES[dataset])
    if dataset == "coco" and coco_masks == "authors":
        sources = [s for s in sources if s.key != "coco/annotations_trainval2017.zip"] + [COCO_AUTHOR_MASKS]
    return sources


def prepare(dataset: str, root: Path, settings: Settings, downloads: Path | None = None, force: bool = False,
            remove_archives: bool = False, prompt: bool = True, coco_masks: str = "authors") -> dict:
    """Prepare ``dataset`` under ``root``; returns the completion record (also written to ``root/MARKER``)."""
    marker = root / MARKER
    if marker.is_file():
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("dataset", dataset) != dataset:
            raise DataError(f"{root} holds the prepared dataset '{record['dataset']}' ({marker}); give '{dataset}' "
                            f"its own --root")
        if not force:
            print(f"{root}: {dataset} is already prepared ({record.get('counts')}); --force prepares it again")
            return record
    marker.unlink(missing_ok=True)
    downloads = downloads or root / "downloads"
    session = cityscapes_session(settings, prompt) if dataset == "cityscapes" else None
    archives = fetch_all(archives_for(dataset, coco_masks), downloads, settings, session=session, extra_space=1.1)
    print(f"extracting and converting {dataset} into {root}", flush=True)
    counts = PREPARERS[dataset](root, {key: Path(path) for key, path in archives.items()})
    record = {"dataset": dataset, "counts": counts, "archives": sorted(archives),
              "verified_by": settings.verified_by(), "mask_encoding": "index"}
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(marker)
    if remove_archives:
        for path in archives.values():
            Path(path).unlink()
    print(f"{root}: {dataset} prepared ({', '.join(f'{v} {k}' for k, v in counts.items())}); next, the split "
          f"lists: {prog('splits', 'semiseg.splits')} fetch {dataset} --root {root}")
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog("data prepare", "semiseg.data.prepare"), description=__doc__,
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(PREPARERS),
                        help="dataset to prepare (published disk need, GiB: "
                             + ", ".join(f"{k} {v}" for k, v in DISK_GB.items()) + ")")
    parser.add_argument("--root", required=True, help="the dataset folder to fill (data.root of its runs)")
    parser.add_argument("--downloads", default="", help="folder for the archives (default: ROOT/downloads); "
                        "archives already there are verified and used, none is fetched again")
    parser.add_argument("--mirror", default=None, help=f"base URL replacing every official one: files are read "
                        f"from MIRROR/<key> (default: ${MIRROR_ENV})")
    parser.add_argument("--checksums", default=None, help=f"checksum registry file (sha256sum/md5sum output keyed "
                        f"by <key>) replacing the recorded checksums (default: ${CHECKSUMS_ENV})")
    parser.add_argument("--force", action="store_true", help="prepare again even if ROOT is marked complete")
    parser.add_argument("--remove-archives", action="store_true", help="delete the archives once prepared")
    parser.add_argument("--coco-masks", default="authors", choices=COCO_MASKS,
                        help="coco: take the UniMatch authors' released masks (default), or make them from the "
                             "instances annotations with pycocotools (rules in docs/data.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = Path(args.root).expanduser().resolve()
    downloads = Path(args.downloads).expanduser().resolve() if args.downloads else None
    prepare(args.dataset, root, Settings.resolve(args.mirror, args.checksums), downloads, args.force,
            args.remove_archives, coco_masks=args.coco_masks)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
