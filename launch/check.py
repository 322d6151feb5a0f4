"""The pre-launch check of a grid: does every cell have its data, split lists and encoder weights?

For each distinct (dataset, root, split) of the cells: the root exists, the split's labeled list and the val
list are found, and the files they name exist (a seeded sample of each list, every file with ``full``); a few
sampled pairs are decoded with the cell's mask encoding. For each ``model.pretrained``: published weights are
cached and match their checksum, a weights file exists. Each problem is one line with the command that fixes it.
"""

from __future__ import annotations

import random
from pathlib import Path

from semiseg.experiments.registry import Cell
from semiseg.cli import prog
from semiseg.data.datasets import DATASETS, load_split, split_file, unlabeled_entries
from semiseg.data.io import NO_MASK, read_pair
from semiseg.errors import DataError
from semiseg.models.published import check_published, fetch_command
from semiseg.models.registry import NAMED_WEIGHTS
from semiseg.sources import PUBLISHED_WEIGHTS
from semiseg.workspace import splits_dir

SAMPLE = 32  # files checked per list without --full
DECODED = 2  # pairs decoded per list


def _prepare_command(dataset: str, root: Path) -> str:
    return f"{prog('data prepare', 'semiseg.data.prepare')} {dataset} --root {root}"


def _missing_files(root: Path, entries: list[tuple[str, str]], full: bool) -> list[str]:
    picked = entries if full else random.Random(0).sample(entries, min(SAMPLE, len(entries)))
    return [rel for pair in picked for rel in pair if rel != NO_MASK and not (root / rel).is_file()]


def check_data(dataset: str, root_setting: str, split: str, encoding: str, full: bool) -> list[str]:
    """Problems of one (dataset, root, split) combination, each with the command that fixes it."""
    spec = DATASETS.get(dataset)
    if spec.prepare is not None:
        return []  # generated on first use (the demo datasets)
    root = Path(root_setting or spec.default_root).expanduser().resolve()
    if not root.is_dir():
        return [f"{dataset}: dataset root {root} does not exist -> {_prepare_command(dataset, root)}"]
    lists = {}
    for kind in ("labeled", "val"):
        if split_file(root, dataset, split, kind) is None:
            rel = "val.txt" if kind == "val" else f"{split}/labeled.txt"
            return [f"{dataset} split '{split}': no {rel} under {root / 'splits'} or {splits_dir() / dataset} -> "
                    f"{prog('splits', 'semiseg.splits')} fetch {dataset} --root {root}"]
        lists[kind] = load_split(root, dataset, split, kind)
    try:
        lists["unlabeled"] = unlabeled_entries(root, spec, split, lists["labeled"])
    except DataError as exc:
        return [f"{dataset} split '{split}': {exc}"]
    problems = []
    codec = spec.codec(encoding)
    for kind, entries in lists.items():
        missing = _missing_files(root, entries, full)
        if missing:
            problems.append(f"{dataset} split '{split}' {kind}: {len(missing)} {'listed' if full else 'sampled'} "
                            f"file(s) missing under {root}, e.g. {missing[0]} -> {_prepare_command(dataset, root)}")
            continue
        for image, mask in entries[:DECODED] if kind != "unlabeled" else []:
            try:
                read_pair(root, image, mask, codec)
            except DataError as exc:
                problems.append(f"{dataset} split '{split}' {kind}: {exc}")
                break
    return problems


def check_weights(pretrained: str) -> list[str]:
    if not pretrained or pretrained in NAMED_WEIGHTS:
        return []  # random init, or made on first use
    if pretrained in PUBLISHED_WEIGHTS:
        problem = check_published(pretrained)
        return [f"{problem} -> {fetch_command(pretrained)}"] if problem else []
    path = Path(pretrained).expanduser()
    return [] if path.is_file() else [f"weights file {path.resolve()} does not exist (model.pretrained) -> give an "
                                      f"existing file or one of: {', '.join(PUBLISHED_WEIGHTS)}"]


def check_cells(cells: list[Cell], full: bool = False) -> list[str]:
    """Every problem of the cells' data and weights (each combination checked once); [] = ready to launch."""
    problems: list[str] = []
    data_seen, weights_seen = set(), set()
    for cell in cells:
        d = cell.config.data
        key = (d.dataset, d.root, d.split, d.mask_encoding)
        if key not in data_seen:
            data_seen.add(key)
            problems += [p for p in check_data(*key, full) if p not in problems]
        if cell.config.model.pretrained not in weights_seen:
            weights_seen.add(cell.config.model.pretrained)
            problems += check_weights(cell.config.model.pretrained)
    return problems
