"""Split lists: the official lists (read from the reference data beside the clone, never copied) and the splits CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED as REFERENCE, require_shared
from layouts import N_TRAIN, build, write_list, write_mask

from semiseg.cli import run_cli
from semiseg.data.catalog import OFFICIAL_COUNTS
from semiseg.data.datasets import DATASETS, open_dataset, read_split
from semiseg.splits import check_lists, main

SHARED = REFERENCE / "splits"


def official_lists() -> dict[str, dict[str, Path]]:
    require_shared(SHARED)
    out: dict[str, dict[str, Path]] = {}
    for path in sorted(SHARED.rglob("*.txt")):
        dataset, rel = path.relative_to(SHARED).parts[0], "/".join(path.relative_to(SHARED).parts[1:])
        out.setdefault(dataset, {})[rel] = path
    return out


def test_every_official_list_parses_with_the_spec_counts():
    lists = official_lists()
    assert set(lists) == {"pascal", "cityscapes", "coco", "ade20k"}
    for dataset, files in lists.items():
        for rel, path in files.items():
            entries = read_split(path)
            assert rel in OFFICIAL_COUNTS[dataset], f"{path}: not in the official counts (semiseg/data/catalog.py)"
            assert len(entries) == OFFICIAL_COUNTS[dataset][rel], path
            masks = {mask for _, mask in entries}
            if dataset == "cityscapes" and rel == "all/unlabeled.txt":
                assert masks == {"None"}  # V2's train_extra list has no masks
            else:
                assert "None" not in masks, path
    # pascal 11 splits x 2 + train_aug + all + val; cityscapes 5 x 2 + all/{train,unlabeled} + val;
    # coco 5 labeled + val (unlabeled lists are not shipped); ade20k 6 x 2 + all + val
    assert {d: len(f) for d, f in lists.items()} == {"pascal": 25, "cityscapes": 13, "coco": 6, "ade20k": 14}


def test_official_splits_partition_the_train_set():
    lists = official_lists()
    pascal_train = {img for img, _ in read_split(lists["pascal"]["train_aug.txt"])}
    city_train = {img for img, _ in read_split(lists["cityscapes"]["all/train.txt"])}
    ade_train = {img for img, _ in read_split(lists["ade20k"]["all/labeled.txt"])}
    for dataset, train in (("pascal", pascal_train), ("cityscapes", city_train), ("ade20k", ade_train)):
        splits = {rel.split("/")[0] for rel in lists[dataset] if rel.endswith("/unlabeled.txt")} - {"all"}
        assert splits, dataset
        for split in splits:
            labeled = [img for img, _ in read_split(lists[dataset][f"{split}/labeled.txt"])]
            unlabeled = [img for img, _ in read_split(lists[dataset][f"{split}/unlabeled.txt"])]
            assert len(set(labeled)) == len(labeled) and not set(labeled) & set(unlabeled), (dataset, split)
            assert set(labeled) | set(unlabeled) == train, (dataset, split)
    hq = {img for img, _ in read_split(lists["pascal"]["1464/labeled.txt"])}
    for split in ("92", "183", "366", "732"):  # high-quality protocol: labeled ⊂ the 1464 fine set
        assert {img for img, _ in read_split(lists["pascal"][f"{split}/labeled.txt"])} <= hq
    blended = {img for img, _ in read_split(lists["pascal"]["1_16/labeled.txt"])}
    assert len(blended & hq) == 93  # docs/methods.md §1.1: only 93 of the 662 are in the 1464 set
    for split in ("1_512", "1_32"):
        assert all(i.startswith("train2017/") for i, _ in read_split(lists["coco"][f"{split}/labeled.txt"]))


def test_import_copies_official_lists_and_refuses_to_overwrite_changes(tmp_path, capsys):
    require_shared(SHARED)
    dest = tmp_path / "splits"
    assert run_cli(main, ["import", str(SHARED / "cityscapes"), "--dataset", "cityscapes", "--dest", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "1_30/labeled.txt: 100 entries  (official size)" in out
    for rel in OFFICIAL_COUNTS["cityscapes"]:
        assert (dest / "cityscapes" / rel).read_bytes() == (SHARED / "cityscapes" / rel).read_bytes()
    (dest / "cityscapes" / "val.txt").write_text("a b\n")
    args = ["import", str(SHARED / "cityscapes"), "--dataset", "cityscapes", "--dest", str(dest)]
    assert run_cli(main, args) == 2
    assert "val.txt exists with different content; pass --force" in capsys.readouterr().err
    assert run_cli(main, args + ["--force"]) == 0
    bad = tmp_path / "bad"
    write_list(bad / "1_4" / "labeled.txt", [("x.png", "y.png")])
    (bad / "val.txt").write_text("only-one-column\n")
    assert run_cli(main, ["import", str(bad), "--dataset", "pascal", "--dest", str(dest)]) == 2
    assert "val.txt:1: expected '<image> <mask>'" in capsys.readouterr().err
    assert not (dest / "pascal").exists()  # nothing is copied unless every list parses


def test_check_reports_the_first_missing_files_and_full_lists_every_bad_file(tmp_path, capsys):
    root = build("pascal", tmp_path / "voc")
    args = ["check", "--dataset", "pascal", "--root", str(root), "--split", "1_16"]
    assert run_cli(main, args) == 0 and capsys.readouterr().out.endswith("ok\n")
    (root / "JPEGImages" / "2007_000004.jpg").unlink()
    (root / "SegmentationClass" / "2007_000006.png").unlink()
    assert run_cli(main, args + ["--show", "1"]) == 1
    out = capsys.readouterr().out
    assert "2 listed files are missing" in out and "2007_000004.jpg" in out and "2007_000006.png" not in out
    write_mask(root / "SegmentationClass" / "2007_000001.png", np.full((40, 56), 40, np.uint8), palette=True)
    write_mask(root / "SegmentationClass" / "2007_001000.png", np.zeros((8, 8), np.uint8), palette=True)
    (root / "JPEGImages" / "2007_000002.jpg").write_bytes(b"garbage")
    spec, root = open_dataset("pascal", str(root))
    report = check_lists(root, spec, ["1_16"], full=True)
    assert len(report.missing) == 2 and len(report.bad) == 3
    assert any("2007_000001.png holds class id 40" in m for m in report.bad)
    assert any("2007_001000.png is 8x8 but its image" in m for m in report.bad)
    assert any("2007_000002.jpg is corrupt" in m for m in report.bad)
    assert run_cli(main, args + ["--full", "--workers", "2"]) == 1
    assert "3 samples are unreadable or invalid" in capsys.readouterr().out


def test_check_against_the_official_lists_names_missing_files_and_size_differences(tmp_path, capsys):
    require_shared(SHARED)
    root = build("cityscapes", tmp_path / "cs")
    args = ["check", "--dataset", "cityscapes", "--root", str(root), "--lists", str(SHARED / "cityscapes"),
            "--split", "1_30", "--show", "3"]
    assert run_cli(main, args) == 1
    out = capsys.readouterr().out
    assert "1_30/labeled.txt: 100 entries" in out and "val.txt: 500 entries" in out
    assert f"listed files are missing under {root}" in out and "_leftImg8bit.png" in out


def test_make_draws_a_seeded_split_and_derives_unlabeled(tmp_path, capsys):
    root = build("coco", tmp_path / "coco")
    dest = tmp_path / "out"
    base = ["make", "--dataset", "coco", "--root", str(root), "--dest", str(dest)]
    assert run_cli(main, base + ["--name", "a", "--fraction", "1/3", "--seed", "1"]) == 0
    assert run_cli(main, base + ["--name", "b", "--labeled", "3", "--seed", "1"]) == 0
    assert run_cli(main, base + ["--name", "c", "--labeled", "3", "--seed", "2"]) == 0
    a, b, c = (read_split(dest / "coco" / s / "labeled.txt") for s in "abc")
    assert len(a) == 3 and a == b and a != c  # ceil(8/3) = 3; same seed, same draw
    unlabeled = read_split(dest / "coco" / "a" / "unlabeled.txt")
    train = DATASETS.get("coco").train_listing.entries(root)
    assert len(train) == N_TRAIN and sorted(a + unlabeled) == sorted(train)
    assert all(mask == f"masks/{img[10:-4]}.png" for img, mask in a + unlabeled)
    assert run_cli(main, base + ["--name", "a", "--labeled", "2"]) == 2
    assert "unlabeled.txt exist; pass --force to replace the split (nothing was written)" in capsys.readouterr().err
    assert run_cli(main, base + ["--name", "d", "--labeled", "2", "--fraction", "1/2"]) == 2
    assert run_cli(main, base + ["--name", "d", "--labeled", "99"]) == 2
    assert "cannot draw 99 labeled images from a pool of 8" in capsys.readouterr().err


def test_make_pascal_high_quality_protocol_draws_from_the_1464_list(tmp_path):
    root = build("pascal", tmp_path / "voc")
    train = read_split(root / "splits" / "1_16" / "labeled.txt") + read_split(root / "splits" / "1_16" /
                                                                           "unlabeled.txt")
    write_list(root / "splits" / "train_aug.txt", train)
    write_list(root / "splits" / "1464" / "labeled.txt", train[:4])
    dest = tmp_path / "out"
    assert run_cli(main, ["make", "--dataset", "pascal", "--root", str(root), "--dest", str(dest), "--name", "hq2",
                          "--labeled", "2", "--protocol", "hq"]) == 0
    labeled = read_split(dest / "pascal" / "hq2" / "labeled.txt")
    assert set(labeled) <= set(train[:4]) and len(read_split(dest / "pascal" / "hq2" / "unlabeled.txt")) == 6
    assert run_cli(main, ["make", "--dataset", "pascal", "--root", str(root), "--dest", str(dest), "--name", "x",
                          "--labeled", "2", "--protocol", "nope"]) == 2


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "semiseg splits check" in out  # as the semiseg command names it
