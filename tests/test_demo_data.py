"""Tests for the procedural ``demo`` dataset (semiseg.data.demo)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from semiseg.data import demo
from semiseg.data.demo import DEMO, DEMO_SPLITS, ensure_demo, save_preview
from semiseg.errors import DataError

PARTIAL_SPLITS = [s for s in DEMO_SPLITS if s != "all"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_demo(tmp_path_factory.mktemp("first") / "demo", seed=0)


def entries(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    for line in lines:
        image, mask = line.split()
        stem = Path(image).stem
        assert (image, mask) == (f"JPEGImages/{stem}.jpg", f"SegmentationClass/{stem}.png")
    return lines


def test_layout(root: Path) -> None:
    for rel in ["JPEGImages", "SegmentationClass", "meta.json", "splits/val.txt", "splits/all/labeled.txt"]:
        assert (root / rel).exists(), rel
    for split in PARTIAL_SPLITS:
        assert (root / "splits" / split / "labeled.txt").is_file()
        assert (root / "splits" / split / "unlabeled.txt").is_file()
    meta = json.loads((root / "meta.json").read_text())
    assert meta["version"] == DEMO.version and meta["seed"] == 0
    assert meta["classes"] == list(DEMO.classes) and len(DEMO.classes) == len(DEMO.palette) == 6
    assert meta["image_size"] == [demo.IMAGE_SIZE, demo.IMAGE_SIZE]


def test_splits(root: Path) -> None:
    train = entries(root / "splits" / "all" / "labeled.txt")
    assert len(train) == len(set(train)) == DEMO_SPLITS["all"] == demo.NUM_TRAIN
    assert all(Path(line.split()[0]).stem.startswith("train_") for line in train)
    val = entries(root / "splits" / "val.txt")
    assert len(val) == demo.NUM_VAL and all(Path(line.split()[0]).stem.startswith("val_") for line in val)

    previous: set[str] = set()
    for split in sorted(PARTIAL_SPLITS, key=DEMO_SPLITS.get):
        labeled = set(entries(root / "splits" / split / "labeled.txt"))
        unlabeled = set(entries(root / "splits" / split / "unlabeled.txt"))
        assert len(labeled) == DEMO_SPLITS[split]
        assert not labeled & unlabeled
        assert labeled | unlabeled == set(train)
        assert previous <= labeled, f"{split} does not contain the smaller labeled sets"
        previous = labeled


def test_files_and_masks(root: Path) -> None:
    allowed = set(range(len(DEMO.classes))) | {demo.IGNORE}
    seen: set[int] = set()
    for split_file in ["all/labeled.txt", "val.txt"]:
        for line in entries(root / "splits" / split_file):
            image_rel, mask_rel = line.split()
            image = cv2.imread(str(root / image_rel), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(root / mask_rel), cv2.IMREAD_UNCHANGED)
            assert image is not None and mask is not None, line
            assert image.shape == (demo.IMAGE_SIZE, demo.IMAGE_SIZE, 3)
            assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
            values = set(np.unique(mask).tolist())
            assert values <= allowed, (line, values)
            if split_file != "val.txt":
                seen |= values
    assert set(range(len(DEMO.classes))) <= seen


def test_mask_files_match_renderer(root: Path) -> None:
    image, label = demo.render_image(0, 1, 3)
    assert np.array_equal(cv2.imread(str(root / "SegmentationClass" / "val_000003.png"), cv2.IMREAD_UNCHANGED), label)
    stored = cv2.cvtColor(cv2.imread(str(root / "JPEGImages" / "val_000003.jpg")), cv2.COLOR_BGR2RGB)
    assert np.abs(stored.astype(int) - image).mean() < 8  # only JPEG loss (noisy content, 4:2:0 chroma)


def test_deterministic(root: Path, tmp_path: Path) -> None:
    again = ensure_demo(tmp_path / "demo", seed=0)
    for sub in ["SegmentationClass", "JPEGImages", "splits"]:
        files = sorted(p.relative_to(root) for p in (root / sub).rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(again) for p in (again / sub).rglob("*") if p.is_file())
        for rel in files:
            assert (root / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_other_seed_differs() -> None:
    for index in range(3):
        image0, label0 = demo.render_image(0, 0, index)
        image1, label1 = demo.render_image(1, 0, index)
        assert not np.array_equal(label0, label1)
        assert not np.array_equal(image0, image1)


def test_complete_folder_is_reused(root: Path) -> None:
    meta = root / "meta.json"
    before = meta.stat().st_mtime_ns
    start = time.perf_counter()
    assert ensure_demo(root, seed=0) == root
    assert time.perf_counter() - start < 0.5
    assert meta.stat().st_mtime_ns == before


def test_incomplete_folder_raises(tmp_path: Path) -> None:
    partial = tmp_path / "demo"
    (partial / "JPEGImages").mkdir(parents=True)
    with pytest.raises(DataError, match="delete"):
        ensure_demo(partial)
    assert (partial / "JPEGImages").is_dir()  # the user's folder is left alone


def test_old_version_or_other_seed_raises(root: Path, tmp_path: Path) -> None:
    meta = json.loads((root / "meta.json").read_text())
    old = tmp_path / "old"
    old.mkdir()
    (old / "meta.json").write_text(json.dumps({**meta, "version": DEMO.version - 1}))
    with pytest.raises(DataError, match=str(old)):
        ensure_demo(old)
    with pytest.raises(DataError, match="seed"):
        ensure_demo(root, seed=1)


def test_lost_race_keeps_winner(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "demo"

    def generate_while_another_process_wins(out: Path, seed: int, scenes: demo.SceneSet) -> None:
        shutil.copytree(root, out, dirs_exist_ok=True)
        shutil.copytree(root, target)

    monkeypatch.setattr(demo, "_generate", generate_while_another_process_wins)
    assert ensure_demo(target) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # the loser's temp folder is gone


def test_preview(root: Path, tmp_path: Path) -> None:
    out = save_preview(root, tmp_path / "preview.png", n=5)
    grid = cv2.imread(str(out))
    assert grid is not None and grid.shape[0] > demo.IMAGE_SIZE and grid.shape[1] > 2 * demo.IMAGE_SIZE


def test_pretext_set_is_disjoint_from_demo(tmp_path: Path) -> None:
    """The pretext set shares no class name, typical hue or image with the demo set."""
    assert not set(demo.PRETEXT.classes[1:]) & set(demo.DEMO.classes[1:])
    assert demo.PRETEXT.stream_offset - demo.DEMO.stream_offset > 2  # train, val and split streams apart
    for stream in (0, 1):
        for index in range(4):
            demo_image, _ = demo.render_image(0, stream, index, demo.DEMO)
            pretext_image, label = demo.render_image(0, stream, index, demo.PRETEXT)
            assert not np.array_equal(demo_image, pretext_image)
            assert set(np.unique(label).tolist()) <= set(range(len(demo.PRETEXT.classes))) | {demo.IGNORE}


def test_pretext_dataset_is_registered_and_checked(root: Path, tmp_path: Path) -> None:
    from semiseg.data.datasets import DATASETS, dataset_root

    spec = DATASETS.get("demo_pretext")
    assert spec.classes == demo.PRETEXT.classes and spec.default_root == "data/demo_pretext"
    pretext = dataset_root(spec, str(tmp_path / "pretext"))
    meta = json.loads((pretext / "meta.json").read_text())
    assert meta["name"] == "demo_pretext" and meta["classes"] == list(demo.PRETEXT.classes)
    labels = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED) for path in sorted((pretext / "SegmentationClass").glob("*"))]
    assert set(np.unique(np.stack(labels)).tolist()) == set(range(6)) | {demo.IGNORE}
    with pytest.raises(DataError, match="another set"):  # the demo folder is not the pretext set
        dataset_root(spec, str(root))
