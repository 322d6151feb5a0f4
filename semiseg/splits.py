"""Split-list tooling: ``semiseg splits fetch|import|check|make`` (docs/methods.md §1.1).

Lists are plain text, one ``<image> <mask>`` pair per line, relative to the dataset root, stored as
``splits/<dataset>/<split>/{labeled,unlabeled}.txt`` and ``splits/<dataset>/val.txt`` in the workspace
(:mod:`semiseg.workspace`); the engine also looks in ``<root>/splits``. An absent unlabeled list means
"train minus labeled" (COCO).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from semiseg.cli import prog, run_cli
from semiseg.data.datasets import (DATASETS, DatasetSpec, open_dataset, read_split,
                                   train_entries, unlabeled_entries)
from semiseg.data.io import NO_MASK, MaskCodec, read_pair
from semiseg.download import Settings, cache_root, fetch_all
from semiseg.errors import DataError
from semiseg.sources import SPLIT_DATASETS, split_sources
from semiseg.workspace import splits_dir

EXAMPLES = """examples:
  {prog} fetch pascal --root ~/data/VOC2012
  {prog} import ~/UniMatch/splits/pascal --dataset pascal
  {prog} check --dataset pascal --root ~/data/VOC2012 --split 92
  {prog} check --dataset cityscapes --root ~/data/cityscapes --full --workers 4
  {prog} make --dataset pascal --root ~/data/VOC2012 --name hq_200 --labeled 200 --protocol hq
  {prog} make --dataset coco --root ~/data/coco --name 1_1024 --fraction 1/1024 --seed 1
"""


# --------------------------------------------------------------------------- import


def import_lists(src: Path, dataset: str, dest: Path | None = None, force: bool = False,
                 into: Path | None = None) -> list[tuple[str, int]]:
    """Copy every ``*.txt`` list under ``src`` (an official repo's ``splits/<dataset>`` or CorrMatch's
    ``partitions/<dataset>``) to ``dest/<dataset>/`` (or to the folder ``into``) keeping sub-folders; each list
    must parse first. Returns (relative path, entry count) per list. ``dest`` defaults to the workspace's
    ``splits/``."""
    DATASETS.get(dataset)
    dest = splits_dir() if dest is None else dest
    if not src.is_dir():
        raise DataError(f"split source {src} is not a folder (expected e.g. <repo>/splits/{dataset})")
    files = sorted(p for p in src.rglob("*.txt"))
    if not files:
        raise DataError(f"no *.txt split lists under {src}")
    out, parsed = into or dest / dataset, {}
    for path in files:
        rel = path.relative_to(src).as_posix()
        entries = read_split(path)
        if path.name != "unlabeled.txt" and any(mask == NO_MASK for _, mask in entries):
            raise DataError(f"{path}: only unlabeled lists may give 'None' as the mask")
        target = out / rel
        if target.is_file() and not force and target.read_bytes() != path.read_bytes():
            raise DataError(f"{target} exists with different content; pass --force to replace it")
        parsed[rel] = (path, len(entries))
    for rel, (path, _) in parsed.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / rel)
    return [(rel, n) for rel, (_, n) in parsed.items()]


def fetch_lists(dataset: str, settings: Settings) -> Path:
    """Download the official lists of ``dataset`` (pinned commits, each SHA-256-checked: :mod:`semiseg.sources`)
    into ``<cache>/splits/<dataset>`` and return that folder, ready for :func:`import_lists`."""
    if dataset not in SPLIT_DATASETS:
        raise DataError(f"no official split lists are registered for '{dataset}'; registered: "
                        f"{', '.join(SPLIT_DATASETS)}")
    folder = cache_root() / "splits" / dataset
    for rel, source in split_sources(dataset):
        fetch_all([source], folder / Path(rel).parent, settings)
    return folder


# --------------------------------------------------------------------------- check


@dataclass
class CheckReport:
    """Result of checking lists against a dataset root."""

    lists: dict[str, int] = field(default_factory=dict)  # list name → entries
    missing: list[str] = field(default_factory=list)  # missing file paths
    bad: list[str] = field(default_factory=list)  # DataError messages from a full check
    size_notes: list[str] = field(default_factory=list)  # lists whose size differs from the official one
    warnings: list[str] = field(default_factory=list)  # accepted, but worth knowing: duplicates, overlaps

    @property
    def ok(self) -> bool:
        return not (self.missing or self.bad)


def _lists_to_check(root: Path, spec: DatasetSpec, splits: list[str], lists_dir: Path | None
                    ) -> dict[str, list[tuple[str, str]]]:
    """Named entry lists: the given splits (unlabeled derived when absent) and val, or every list found."""
    bases = [lists_dir] if lists_dir else [root / "splits", splits_dir() / spec.name]
    if not splits:
        found: dict[str, Path] = {}
        for base in bases:
            for path in sorted(base.rglob("*.txt")) if base.is_dir() else []:
                found.setdefault(path.relative_to(base).as_posix(), path)
        if not found:
            raise DataError(f"no split lists for '{spec.name}' under {' or '.join(map(str, bases))}")
        return {rel: read_split(path) for rel, path in found.items()}

    def find(rel: str) -> Path | None:
        return next((b / rel for b in bases if (b / rel).is_file()), None)

    out = {}
    for split in splits:
        labeled_path = find(f"{split}/labeled.txt")
        if labeled_path is None:
            raise DataError(f"split '{split}' of '{spec.name}': no labeled.txt under {' or '.join(map(str, bases))}")
        out[f"{split}/labeled.txt"] = labeled = read_split(labeled_path)
        unlabeled_path = find(f"{split}/unlabeled.txt")
        if unlabeled_path is not None:
            out[f"{split}/unlabeled.txt"] = read_split(unlabeled_path)
        else:
            out[f"{split}/unlabeled.txt (train minus labeled)"] = unlabeled_entries(root, spec, split, labeled)
    val = find("val.txt")
    if val is not None:
        out["val.txt"] = read_split(val)
    return out


def list_warnings(lists: dict[str, list[tuple[str, str]]]) -> list[str]:
    """Duplicate images within a list, and labeled images also in the same split's unlabeled list (the official
    blended Pascal splits do overlap: such images are trained on as both)."""
    out = []
    for name, entries in lists.items():
        images = [image for image, _ in entries]
        dupes = len(images) - len(set(images))
        if dupes:
            first = next(i for i in images if images.count(i) > 1)
            out.append(f"{name}: {dupes} duplicate entries (an image listed more than once, e.g. {first}); "
                       f"each copy is sampled")
    for name, entries in lists.items():
        split, _, kind = name.partition(" ")[0].rpartition("/")
        if kind != "labeled.txt":
            continue
        unlabeled = next((e for n, e in lists.items() if n.startswith(f"{split}/unlabeled.txt")), [])
        labeled = {image for image, _ in entries}
        shared = labeled & {image for image, _ in unlabeled}
        if shared:
            out.append(f"split '{split}': {len(shared)} of the {len(labeled)} labeled images are also in its unlabeled "
                       f"list, e.g. {min(shared)} (as in the official blended splits; they are trained on as both)")
    return out


def _decode(args: tuple[Path, str, str, MaskCodec]) -> str | None:
    root, image, mask, codec = args
    try:
        read_pair(root, image, mask, codec, allow_no_mask=True)
    except DataError as exc:
        return str(exc)
    return None


def check_lists(root: Path, spec: DatasetSpec, splits: list[str] = (), lists_dir: Path | None = None,
                full: bool = False, encoding: str = "index", workers: int = 1) -> CheckReport:
    """Check that every listed file exists under ``root``; with ``full``, decode every image/mask pair too
    (corrupt, truncated, mis-sized, out-of-range class ids) and collect every problem."""
    report = CheckReport()
    pairs: dict[tuple[str, str], None] = {}
    official = spec.official_counts
    lists = _lists_to_check(root, spec, list(splits), lists_dir)
    for name, entries in lists.items():
        report.lists[name] = len(entries)
        key = name.split(" ")[0]
        if key in official and official[key] != len(entries):
            report.size_notes.append(f"{name}: {len(entries)} entries; the official list has {official[key]}")
        pairs.update(dict.fromkeys(entries))
    report.warnings = list_warnings(lists)
    seen = set()
    for image, mask in pairs:
        for rel in (image, mask):
            if rel != NO_MASK and rel not in seen:
                seen.add(rel)
                if not (root / rel).is_file():
                    report.missing.append(str(root / rel))
    if full:
        absent = set(report.missing)
        jobs = [(root, i, m, spec.codec(encoding)) for i, m in pairs
                if str(root / i) not in absent and (m == NO_MASK or str(root / m) not in absent)]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_decode, jobs, chunksize=64))
        else:
            results = [_decode(job) for job in jobs]
        report.bad = [r for r in results if r]
    return report


# --------------------------------------------------------------------------- make


def parse_fraction(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise DataError(f"--fraction {text!r} is not a fraction like 1/16 or 0.125") from None
    if not 0 < value <= 1:
        raise DataError(f"--fraction {text!r} must lie in (0, 1]")
    return value


def make_split(train: list[tuple[str, str]], pool: list[tuple[str, str]], n_labeled: int, seed: int
               ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Draw ``n_labeled`` entries from ``pool`` (seeded, without replacement); unlabeled = train minus labeled."""
    train_images = {image for image, _ in train}
    outside = [image for image, _ in pool if image not in train_images]
    if outside:
        raise DataError(f"{len(outside)} images of the labeled pool are not in the train set, e.g. {outside[0]}")
    if not 1 <= n_labeled <= len(pool):
        raise DataError(f"cannot draw {n_labeled} labeled images from a pool of {len(pool)}")
    order = np.random.default_rng(seed).choice(len(pool), size=n_labeled, replace=False)
    labeled = [pool[i] for i in order]
    taken = {image for image, _ in labeled}
    return labeled, [entry for entry in train if entry[0] not in taken]


def _write_lists(lists: dict[Path, list[tuple[str, str]]], force: bool) -> None:
    """Write split lists all or none: every target is checked first, each is written to a temporary file
    beside it, and the files are renamed into place only once all are written."""
    existing = [str(path) for path in lists if path.exists()]
    if existing and not force:
        raise DataError(f"{' and '.join(existing)} {'exists' if len(existing) == 1 else 'exist'}; pass --force to "
                        f"replace the split (nothing was written)")
    tmps = {}
    try:
        for path, entries in lists.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmps[path] = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmps[path].write_text("".join(f"{image} {mask}\n" for image, mask in entries))
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- command line


def _check_dest(dest: Path) -> None:
    blocker = next((p for p in (dest, *dest.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DataError(f"--dest {dest}: {blocker} is a file, not a folder for split lists")


def _at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise DataError(f"{name} must be at least {low}, got {value}")


def _cmd_import(args) -> int:
    _check_dest(Path(args.dest))
    for rel, n in import_lists(Path(args.src).expanduser(), args.dataset, Path(args.dest), args.force):
        official = DATASETS.get(args.dataset).official_counts.get(rel)
        note = "" if official is None else ("  (official size)" if official == n else f"  (official: {official})")
        print(f"{Path(args.dest) / args.dataset / rel}: {n} entries{note}")
    return 0


def _cmd_fetch(args) -> int:
    if args.root and args.dest:
        raise DataError("give --root (lists go to ROOT/splits) or --dest (lists go to DEST/<dataset>), not both")
    src = fetch_lists(args.dataset, Settings.resolve(args.mirror, args.checksums))
    into = Path(args.root).expanduser().resolve() / "splits" if args.root else None
    dest = Path(args.dest) if args.dest else splits_dir()
    _check_dest(into or dest)
    official = DATASETS.get(args.dataset).official_counts
    for rel, n in import_lists(src, args.dataset, dest, args.force, into):
        note = "" if official.get(rel) is None else ("  (official size)" if official[rel] == n
                                                     else f"  (official: {official[rel]})")
        print(f"{(into or dest / args.dataset) / rel}: {n} entries{note}")
    root = f" --root {args.root}" if args.root else ""
    print(f"check them against the data: {prog('splits', 'semiseg.splits')} check --dataset {args.dataset}{root}")
    return 0


def _cmd_check(args) -> int:
    _at_least("--workers", args.workers, 1)
    _at_least("--show", args.show, 0)
    spec, root = open_dataset(args.dataset, args.root)
    lists_dir = Path(args.lists).expanduser() if args.lists else None
    report = check_lists(root, spec, args.split, lists_dir, args.full, args.mask_encoding, args.workers)
    for name, n in report.lists.items():
        print(f"{name}: {n} entries")
    for note in report.size_notes:
        print(f"note: {note}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.missing:
        print(f"{len(report.missing)} listed files are missing under {root}; the first ones:")
        print("\n".join(f"  {p}" for p in report.missing[:args.show]))
    if report.bad:
        print(f"{len(report.bad)} samples are unreadable or invalid:")
        print("\n".join(f"  {msg}" for msg in report.bad))
    print("ok" if report.ok else "FAILED")
    return 0 if report.ok else 1


def _cmd_make(args) -> int:
    if (args.labeled is None) == (args.fraction is None):
        raise DataError("give exactly one of --labeled N or --fraction 1/K")
    _at_least("--seed", args.seed, 0)
    if not args.name or Path(args.name).name != args.name or args.name in (".", ".."):
        raise DataError(f"--name {args.name!r} must be a plain folder name such as 1_16 (the split's folder under "
                        f"--dest/<dataset>/), not a path")
    _check_dest(Path(args.dest))
    spec, root = open_dataset(args.dataset, args.root)
    if args.train:
        train, source = read_split(Path(args.train)), args.train
    else:
        train, source = train_entries(root, spec)
        if not train:
            raise DataError(f"no train set for '{spec.name}': pass --train LIST or import the official lists "
                            f"(looked for {', '.join(spec.train_lists) or 'none'} and the folder listing)")
    if args.pool:
        pool = read_split(Path(args.pool))
    elif args.protocol:
        if args.protocol not in spec.protocols:
            valid = ", ".join(spec.protocols) or "none for this dataset"
            raise DataError(f"unknown protocol {args.protocol!r} for '{spec.name}'; valid: {valid}")
        pool_list = next((b / spec.protocols[args.protocol] for b in (root / "splits", splits_dir() / spec.name)
                          if (b / spec.protocols[args.protocol]).is_file()), None)
        if pool_list is None:
            raise DataError(f"protocol '{args.protocol}' draws from {spec.protocols[args.protocol]}, which is not "
                            f"under {root / 'splits'} or {splits_dir() / spec.name}")
        pool = read_split(pool_list)
    else:
        pool = train
    n = args.labeled if args.labeled is not None else math.ceil(len(train) * parse_fraction(args.fraction))
    labeled, unlabeled = make_split(train, pool, n, args.seed)
    out = Path(args.dest) / spec.name / args.name
    _write_lists({out / "labeled.txt": labeled, out / "unlabeled.txt": unlabeled}, args.force)
    print(f"{out}: {len(labeled)} labeled (seed {args.seed}, from {len(pool)}), {len(unlabeled)} unlabeled "
          f"(train {len(train)} from {source})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    name = prog("splits", "semiseg.splits")
    examples = EXAMPLES.format(prog=name)
    parser = argparse.ArgumentParser(prog=name, description=__doc__, epilog=examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    datasets = DATASETS.names()

    imp = sub.add_parser("import", help="copy a user's official split lists into splits/<dataset>/",
                         epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("src", help="folder holding <split>/labeled.txt, <split>/unlabeled.txt, val.txt, ...")
    imp.add_argument("--dataset", required=True, choices=datasets)
    imp.add_argument("--dest", default=str(splits_dir()),
                     help=f"splits folder (default: splits/ in the workspace, {splits_dir()})")
    imp.add_argument("--force", action="store_true", help="replace lists that exist with other content")
    imp.set_defaults(func=_cmd_import)

    fetch = sub.add_parser("fetch", help="download the official lists (pinned commits, SHA-256-checked) and import "
                           "them", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("dataset", choices=list(SPLIT_DATASETS))
    fetch.add_argument("--root", default="", help="put the lists in ROOT/splits/ (the dataset root's own lists)")
    fetch.add_argument("--dest", default="", help="splits folder for DEST/<dataset>/ (default: the workspace's "
                       f"splits/, {splits_dir()})")
    fetch.add_argument("--mirror", default=None, help="base URL replacing the official ones ($SEMISEG_MIRROR)")
    fetch.add_argument("--checksums", default=None, help="checksum registry file ($SEMISEG_CHECKSUMS)")
    fetch.add_argument("--force", action="store_true", help="replace lists that exist with other content")
    fetch.set_defaults(func=_cmd_fetch)

    chk = sub.add_parser("check", help="verify every listed file exists under a dataset root (--full: decode all)",
                         epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    chk.add_argument("--dataset", required=True, choices=datasets)
    chk.add_argument("--root", default="", help="dataset root (default: the dataset's default location)")
    chk.add_argument("--split", action="append", default=[], help="split name to check, repeatable (default: "
                     "every list found in <root>/splits and splits/<dataset>)")
    chk.add_argument("--lists", default="", help="read the lists from this folder instead")
    chk.add_argument("--full", action="store_true", help="decode every image and mask and list every bad file "
                     "(corrupt, truncated, size mismatch, class id >= num_classes other than 255)")
    chk.add_argument("--mask-encoding", default="index", choices=["index", "reduce_zero"],
                     help="as data.mask_encoding (ADE20K raw annotations: reduce_zero)")
    chk.add_argument("--show", type=int, default=10, help="how many missing files to print")
    chk.add_argument("--workers", type=int, default=1, help="decoding processes for --full")
    chk.set_defaults(func=_cmd_check)

    mk = sub.add_parser("make", help="draw a new labeled/unlabeled split with a seed",
                        epilog=examples, formatter_class=argparse.RawDescriptionHelpFormatter)
    mk.add_argument("--dataset", required=True, choices=datasets)
    mk.add_argument("--root", default="", help="dataset root (for its splits/ and folder listing)")
    mk.add_argument("--name", required=True, help="new split name (folder under splits/<dataset>/)")
    mk.add_argument("--labeled", type=int, help="number of labeled images")
    mk.add_argument("--fraction", help="labeled fraction of the train set, e.g. 1/16 (count rounded up)")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--protocol", help="draw the labeled images from a named pool (pascal: hq = the 1464 fine "
                    "train images, blended = all 10582 train_aug images)")
    mk.add_argument("--pool", help="draw the labeled images from this list instead")
    mk.add_argument("--train", help="the full train list (default: the dataset's train list or folder listing)")
    mk.add_argument("--dest", default=str(splits_dir()),
                     help=f"splits folder (default: splits/ in the workspace, {splits_dir()})")
    mk.add_argument("--force", action="store_true", help="replace existing lists")
    mk.set_defaults(func=_cmd_make)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
