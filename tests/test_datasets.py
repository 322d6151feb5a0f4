"""Real on-disk layouts of every dataset: read exactly, train one iteration, evaluate; checked I/O."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import small_config
from layouts import N_LABELED, N_TRAIN, N_VAL, NUM_CLASSES, build, write_image, write_list, write_mask

from semiseg.data import catalog
from semiseg.data.datasets import DATASETS, SegDataset, open_dataset
from semiseg.data.device import to_device
from semiseg.data.io import MaskCodec, read_image, read_mask, read_pair
from semiseg.data.sampling import build_data
from semiseg.errors import ConfigError, DataError
from semiseg.tracking import _client
from semiseg.runtime import build_trainer

LAYOUTS = ["pascal", "cityscapes", "ade20k", "coco", "pascal_context", "folder"]


def layout_config(tmp_path, name, *overrides):
    split = "1_512" if name == "coco" else "1_16"
    extra = ["data.mask_encoding=reduce_zero"] if name == "ade20k" else []
    return small_config(tmp_path, build(name, tmp_path / name), f"data.dataset={name}", f"data.split='{split}'",
                        "train.epochs=1", "train.max_iters_per_epoch=1", "train.batch_size=2", *extra, *overrides)


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_layout_trains_one_iteration_and_evaluates(tmp_path, name):
    cfg = layout_config(tmp_path, name)
    trainer = build_trainer(cfg)
    data = trainer.data
    assert (data.n_labeled, data.n_unlabeled, len(data.val_loader)) == (N_LABELED, N_TRAIN - N_LABELED, N_VAL)
    assert data.num_classes == (4 if name == "folder" else NUM_CLASSES[name])
    state = trainer.train()
    assert state.epoch == 1 and state.iteration == 1
    assert 0.0 <= state.last_miou <= 100.0 and len(trainer.last_result.reported.iou) == data.num_classes
    params = _client(cfg.runtime.tracking_uri).get_run(trainer.run_id).data.params
    expected = "sliding_window(crop=32, stride=21, truncate)" if name == "cityscapes" else "original"
    assert params["eval.mode"] == "auto" and params["derived.eval_protocol"] == expected


def test_class_tables_follow_the_spec():
    counts = {"pascal": 21, "cityscapes": 19, "ade20k": 150, "coco": 81, "pascal_context": 60}
    for name, n in counts.items():
        spec = DATASETS.get(name)
        assert spec.num_classes == n and len(set(spec.classes)) == n and len(spec.palette) == n, name
    assert DATASETS.get("coco").classes[0] == "void" and DATASETS.get("coco").classes[-1] == "toothbrush"
    assert DATASETS.get("ade20k").classes[:3] == ("wall", "building", "sky")
    assert DATASETS.get("ade20k").classes[-1] == "flag"
    assert DATASETS.get("pascal_context").classes[-1] == "wood"
    assert catalog.voc_palette(3) == ((0, 0, 0), (128, 0, 0), (0, 128, 0))
    assert DATASETS.get("cityscapes").palette[0] == (128, 64, 128)


def test_val_sample_is_native_size_and_normalised_with_the_dataset_stats(tmp_path):
    root = build("folder", tmp_path / "f")
    spec, root = open_dataset("folder", str(root))
    assert spec.classes == ("background", "road", "car", "tree") and spec.mean == (0.5, 0.5, 0.5)
    entries = [tuple(line.split()) for line in (root / "splits" / "val.txt").read_text().splitlines()]
    dataset = SegDataset(root, entries, "val", spec.codec(), mean=spec.mean, std=spec.std)
    sample = dataset[0]
    img = read_image(root / entries[0][0])
    assert sample["img"].dtype == sample["mask"].dtype == torch.uint8  # normalised on the training device
    batch = to_device({k: v[None] for k, v in sample.items() if k != "index"}, torch.device("cpu"), dataset.norm)
    expected = (torch.from_numpy(img).permute(2, 0, 1).float() / 255 - 0.5) / 0.25
    assert batch["img"].shape == (1, 3, 40, 56) and torch.allclose(batch["img"][0], expected)
    assert batch["mask"].dtype == torch.int64


def test_coco_unlabeled_is_train_minus_labeled_from_the_train2017_folder(tmp_path):
    cfg = layout_config(tmp_path, "coco")
    data = build_data(cfg, ("labeled", "unlabeled"))
    labeled = {e[0] for e in data.loaders["labeled"].dataset.entries}
    unlabeled = data.loaders["unlabeled"].dataset.entries
    assert len(unlabeled) == N_TRAIN - N_LABELED and not labeled & {e[0] for e in unlabeled}
    assert all(img.startswith("train2017/") and mask == f"masks/{img[10:-4]}.png" for img, mask in unlabeled)


def test_ade20k_label_encoding_is_explicit_and_never_applied_twice(tmp_path):
    raw = build("ade20k", tmp_path / "raw", raw_ade=True)
    reduced = build("ade20k", tmp_path / "reduced", raw_ade=False)
    rel = "annotations/training/ADE_train_00000001.png"
    raw_stored = read_mask(raw / rel, MaskCodec(256))  # plain bytes as stored
    decoded = read_mask(raw / rel, MaskCodec(150, "reduce_zero"))
    assert np.array_equal(decoded, np.where(raw_stored == 0, 255, raw_stored.astype(int) - 1))
    assert np.array_equal(decoded, read_mask(reduced / rel, MaskCodec(150, "index")))
    with pytest.raises(DataError, match="already reduced.*never reduce twice"):
        read_mask(reduced / rel, MaskCodec(150, "reduce_zero"))
    raw_with_150 = tmp_path / "raw150.png"
    write_mask(raw_with_150, np.full((4, 4), 150, np.uint8), palette=False)
    with pytest.raises(DataError, match="raw150.png holds class id 150.*reduce_zero"):
        read_mask(raw_with_150, DATASETS.get("ade20k").codec("index"))


def test_unlabeled_samples_use_a_dummy_mask_and_accept_none(tmp_path):
    root = build("cityscapes", tmp_path / "c")
    image = "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png"
    ds = SegDataset(root, [(image, "None")], "train_u", 19, crop_size=160)
    sample = ds[(0, 7)]
    assert sample["w"].shape == (3, 160, 160) and set(sample["ign"].unique().tolist()) <= {0, 255}
    assert (sample["ign"] == 255).any()  # the 32x64 image rescaled to at most 64x128: padding is marked
    with pytest.raises(DataError, match="only unlabeled lists may omit masks"):
        SegDataset(root, [(image, "None")], "train_l", 19, crop_size=160)[(0, 7)]


@pytest.mark.parametrize("problem, message", [
    ("missing_image", r"image .*2007_000000\.jpg does not exist"),
    ("missing_mask", r"mask .*2007_000000\.png does not exist"),
    ("corrupt_image", r"image .*2007_000000\.jpg is corrupt"),
    ("truncated_jpeg", r"image .*2007_000000\.jpg is a truncated JPEG"),
    ("empty_mask", r"mask .*2007_000000\.png is an empty file"),
    ("corrupt_mask", r"mask .*2007_000000\.png is corrupt"),
    ("colour_mask", r"mask .*2007_000000\.png is a RGB image"),
    ("size_mismatch", r"mask .*2007_000000\.png is 20x10 but its image .*2007_000000\.jpg is 56x40"),
    ("bad_class", r"mask .*2007_000000\.png holds class id 21; valid ids are 0\.\.20 and 255"),
])
def test_bad_files_raise_a_data_error_naming_the_file(tmp_path, problem, message):
    root = build("pascal", tmp_path / "p")
    image, mask = root / "JPEGImages/2007_000000.jpg", root / "SegmentationClass/2007_000000.png"
    if problem == "missing_image":
        image.unlink()
    elif problem == "missing_mask":
        mask.unlink()
    elif problem == "corrupt_image":
        image.write_bytes(b"this is not a jpeg at all")
    elif problem == "truncated_jpeg":
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    elif problem == "empty_mask":
        mask.write_bytes(b"")
    elif problem == "corrupt_mask":
        mask.write_bytes(mask.read_bytes()[:60])
    elif problem == "colour_mask":
        write_image(mask, np.zeros((40, 56, 3), np.uint8))
    elif problem == "size_mismatch":
        write_mask(mask, np.zeros((10, 20), np.uint8), palette=True)
    elif problem == "bad_class":
        write_mask(mask, np.full((40, 56), 21, np.uint8), palette=True)
    with pytest.raises(DataError, match=message):
        read_pair(root, "JPEGImages/2007_000000.jpg", "SegmentationClass/2007_000000.png",
                  DATASETS.get("pascal").codec())


def test_a_bad_file_stops_training_with_the_file_named(tmp_path):
    cfg = layout_config(tmp_path, "pascal")
    bad = tmp_path / "pascal" / "SegmentationClass" / "2007_000001.png"
    write_mask(bad, np.full((40, 56), 30, np.uint8), palette=True)
    write_list(tmp_path / "pascal" / "splits" / "1_16" / "labeled.txt",
               [("JPEGImages/2007_000001.jpg", "SegmentationClass/2007_000001.png")])
    with pytest.raises(DataError, match="2007_000001.png holds class id 30"):
        build_trainer(cfg).train()


def test_cityscapes_label_ids_hint_and_config_choices(tmp_path):
    path = tmp_path / "x_gtFine_labelIds.png"
    write_mask(path, np.full((4, 4), 26, np.uint8), palette=False)
    with pytest.raises(DataError, match="labelTrainIds"):
        read_mask(path, DATASETS.get("cityscapes").codec())
    with pytest.raises(ConfigError, match="data.mask_encoding"):
        small_config(tmp_path, tmp_path, "data.mask_encoding=shifted")
