"""Preparing datasets from their official archive formats, served by a loopback mirror: exact layouts and mask
values, resume of a cut download, refused checksums, the no-network report."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask
from tiny_sources import (H, IDS, SBD_MASK_B, VOC_MASK_A, W, Mirror, coco_json, jpeg, pascal_archives, png, serve,
                          tar_bytes, zip_bytes)

from semiseg.data import prepare as prep
from semiseg.data.convert import ade_reduce
from semiseg.download import Pins, Settings, fetch_all
from semiseg.errors import DataError, UserError
from semiseg.sources import Source


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMISEG_CACHE", str(tmp_path / "cache"))
    with Mirror(tmp_path / "mirror") as server:
        monkeypatch.setenv("SEMISEG_MIRROR", server.url)
        monkeypatch.setenv("SEMISEG_CHECKSUMS", str(tmp_path / "checksums.sha256"))
        (tmp_path / "checksums.sha256").write_text("# the tiny archives\n")
        yield server


def _mask(path):
    with Image.open(path) as image:
        return image.mode, np.array(image)


def test_pascal_merges_sbd_into_voc_masks_voc_winning(tmp_path, mirror):
    serve(mirror, pascal_archives(), tmp_path / "checksums.sha256")
    root = tmp_path / "pascal"
    assert prep.main(["pascal", "--root", str(root)]) == 0
    a, b, c = IDS
    assert sorted(p.name for p in (root / "JPEGImages").iterdir()) == [f"{i}.jpg" for i in IDS]
    assert sorted(p.name for p in (root / "SegmentationClass").iterdir()) == [f"{a}.png", f"{b}.png"]
    # VOC's mask is kept byte for byte (SBD's different mask of the same image is not used)
    assert (root / "SegmentationClass" / f"{a}.png").read_bytes() == png(VOC_MASK_A, palette=True)
    mode, mask_a = _mask(root / "SegmentationClass" / f"{a}.png")
    assert mode == "P" and mask_a[0].tolist() == [255] * W and mask_a[2, 3] == 15 and mask_a[5, 0] == 0
    mode, mask_b = _mask(root / "SegmentationClass" / f"{b}.png")
    expected_b = np.zeros((H, W), np.uint8)  # hand-written: 7 on rows 2..4 x cols 0..2, 20 on the last column
    expected_b[2:5, 0:3] = 7
    expected_b[:, 7] = 20
    assert mode == "P" and np.array_equal(mask_b, expected_b) and np.array_equal(mask_b, SBD_MASK_B)
    record = json.loads((root / prep.MARKER).read_text())
    assert record["counts"] == {"images": 3, "voc_masks": 1, "sbd_masks": 1}
    assert record["verified_by"] == str(tmp_path / "checksums.sha256")
    # prepared: a second run fetches nothing and says so; another dataset is not mixed into the folder
    gets = len(mirror.log)
    assert prep.main(["pascal", "--root", str(root)]) == 0 and len(mirror.log) == gets
    with pytest.raises(DataError, match="holds the prepared dataset 'pascal'.*give 'ade20k' its own --root"):
        prep.prepare("ade20k", root, Settings.resolve())


def test_cut_download_resumes_with_a_range_request(tmp_path, mirror):
    data = bytes(range(256)) * 4096
    line = mirror.put("big/file.bin", data)
    (tmp_path / "checksums.sha256").write_text(line)
    source = Source("big/file.bin", "http://unused.invalid/file.bin", None)
    settings, folder = Settings.resolve(), tmp_path / "dl"
    mirror.cut.add("big/file.bin")
    with pytest.raises(DataError, match=r"was cut after \d+ of 1048576 bytes.*run the same command again"):
        fetch_all([source], folder, settings, Pins(tmp_path / "pins"))
    kept = (folder / "file.bin.part").stat().st_size  # what arrived, up to the last whole 64 KiB chunk
    assert len(data) // 2 - 65536 < kept <= len(data) // 2 and not (folder / "file.bin").exists()
    path = fetch_all([source], folder, settings, Pins(tmp_path / "pins"))["big/file.bin"]
    assert path.read_bytes() == data and not (folder / "file.bin.part").exists()
    assert mirror.gets("big/file.bin")[-1][2] == f"bytes={kept}-"


def test_bad_checksum_is_refused_and_nothing_looks_complete(tmp_path, mirror, capsys):
    archives = pascal_archives()
    for key, data in archives.items():
        mirror.put(key, data)
    (tmp_path / "checksums.sha256").write_text(
        "".join(f"{'0' * 64}  {key}\n" for key in archives))
    root = tmp_path / "pascal"
    with pytest.raises(DataError, match="does not match its checksum.*nothing was kept"):
        prep.prepare("pascal", root, Settings.resolve())
    assert not (root / prep.MARKER).exists()
    assert [p.name for p in (root / "downloads").iterdir() if not p.name.endswith(".lock")] == []
    assert not (root / "JPEGImages").exists()
    # through the command line: exit 2, a one-line error, no traceback
    from semiseg.cli import run_cli
    assert run_cli(prep.main, ["pascal", "--root", str(root)]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_damaged_archive_already_there_is_refused(tmp_path, mirror):
    serve(mirror, pascal_archives(), tmp_path / "checksums.sha256")
    root = tmp_path / "pascal"
    (root / "downloads").mkdir(parents=True)
    (root / "downloads" / "benchmark.tgz").write_bytes(b"not the archive")
    with pytest.raises(DataError, match="benchmark.tgz: sha256 .* does not match .*checksum registry.*Delete"):
        prep.prepare("pascal", root, Settings.resolve())
    assert not (root / prep.MARKER).exists()


def test_no_network_names_each_file_its_url_and_the_manual_steps(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEMISEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SEMISEG_CHECKSUMS", raising=False)
    from semiseg.cli import run_cli
    code = run_cli(prep.main, ["pascal", "--root", str(tmp_path / "p"), "--mirror", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "cannot reach the download source(s)" in err and "2 file(s) are missing" in err
    assert f"{tmp_path / 'p' / 'downloads' / 'VOCtrainval_11-May-2012.tar'}" in err
    assert "from http://127.0.0.1:9/voc2012/VOCtrainval_11-May-2012.tar" in err
    assert "md5:82b4d87ceb2ed10f6038a1cba92111cb" in err  # SBD's recorded checksum
    assert "download each URL on a machine with network access, put the file at the path shown" in err


def test_archives_put_by_hand_are_verified_and_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMISEG_CACHE", str(tmp_path / "cache"))
    registry = tmp_path / "sums"
    downloads = tmp_path / "by-hand"
    downloads.mkdir()
    lines = []
    for key, data in pascal_archives().items():
        (downloads / key.rsplit("/", 1)[1]).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {key}\n")
    registry.write_text("".join(lines))
    root = tmp_path / "pascal"
    assert prep.main(["pascal", "--root", str(root), "--downloads", str(downloads), "--mirror", "http://127.0.0.1:9",
                      "--checksums", str(registry)]) == 0
    assert len(list((root / "SegmentationClass").iterdir())) == 2 and (root / prep.MARKER).is_file()


def test_coco_masks_from_polygons_rle_and_crowd(tmp_path, mirror):
    rle = coco_mask.encode(np.asfortranarray(np.pad(np.ones((3, 3), np.uint8), ((2, 1), (1, 4)))))
    rle["counts"] = rle["counts"].decode()
    annotations = [  # the smaller car comes first in the file: overlaps are decided by area, not file order
        {"id": 1, "image_id": 42, "category_id": 3, "iscrowd": 0, "area": 9.0, "segmentation": rle,
         "bbox": [1, 2, 3, 3]},
        {"id": 2, "image_id": 42, "category_id": 1, "iscrowd": 0, "area": 12.0,
         "segmentation": [[2, 1, 6, 1, 6, 4, 2, 4]], "bbox": [2, 1, 4, 3]},
        {"id": 3, "image_id": 42, "category_id": 18, "iscrowd": 1, "area": 18.0,
         "segmentation": {"counts": [30, 18], "size": [H, W]}, "bbox": [5, 0, 3, 6]},
    ]
    train = coco_json([{"id": 42, "file_name": "000000000042.jpg", "height": H, "width": W}], annotations)
    val = coco_json([{"id": 7, "file_name": "000000000007.jpg", "height": H, "width": W}],
                    [{"id": 9, "image_id": 7, "category_id": 90, "iscrowd": 0, "area": 4.0,
                      "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]], "bbox": [0, 0, 2, 2]}])
    serve(mirror, {
        "coco/train2017.zip": zip_bytes({"train2017/000000000042.jpg": jpeg(H, W, 0)}),
        "coco/val2017.zip": zip_bytes({"val2017/000000000007.jpg": jpeg(H, W, 1)}),
        "coco/annotations_trainval2017.zip": zip_bytes({"annotations/instances_train2017.json": train,
                                                        "annotations/instances_val2017.json": val,
                                                        "annotations/captions_train2017.json": b"{}"}),
    }, tmp_path / "checksums.sha256")
    root = tmp_path / "coco"
    assert prep.main(["coco", "--root", str(root), "--coco-masks", "instances"]) == 0
    assert (root / "train2017" / "000000000042.jpg").is_file() and (root / "val2017" / "000000000007.jpg").is_file()
    assert sorted(p.name for p in (root / "masks").iterdir()) == ["000000000007.png", "000000000042.png"]
    # hand-computed: crowd columns 5..7 -> 255; person polygon x 2..5, y 1..3 -> 1 (wins over the crowd);
    # car RLE rows 2..4, cols 1..3 -> 3 (smaller than the person: wins where they overlap)
    expected = np.array([
        [0, 0, 0, 0, 0, 255, 255, 255],
        [0, 0, 1, 1, 1, 1, 255, 255],
        [0, 3, 3, 3, 1, 1, 255, 255],
        [0, 3, 3, 3, 1, 1, 255, 255],
        [0, 3, 3, 3, 0, 255, 255, 255],
        [0, 0, 0, 0, 0, 255, 255, 255]], np.uint8)
    assert np.array_equal(_mask(root / "masks" / "000000000042.png")[1], expected)
    val_mask = _mask(root / "masks" / "000000000007.png")[1]
    assert val_mask[:2, :2].tolist() == [[80, 80], [80, 80]] and val_mask.sum() == 4 * 80  # toothbrush = 80


def test_cityscapes_label_ids_become_train_ids(tmp_path, mirror, monkeypatch):
    label_ids = np.array([[7, 8, 26, 0], [1, 24, 33, 6]], np.uint8)  # road sidewalk car unlabeled / ego person
    name = "aachen/aachen_000000_000019"
    serve(mirror, {
        "cityscapes/gtFine_trainvaltest.zip": zip_bytes({
            f"gtFine/train/{name}_gtFine_labelIds.png": png(label_ids),
            f"gtFine/train/{name}_gtFine_color.png": png(label_ids),
            "gtFine/test/berlin/berlin_000000_000019_gtFine_labelIds.png": png(label_ids)}),
        "cityscapes/leftImg8bit_trainvaltest.zip": zip_bytes({
            f"leftImg8bit/train/{name}_leftImg8bit.png": png(np.zeros((2, 4), np.uint8)),
            "leftImg8bit/test/berlin/berlin_000000_000019_leftImg8bit.png": png(np.zeros((2, 4), np.uint8))}),
    }, tmp_path / "checksums.sha256")
    root = tmp_path / "cityscapes"
    assert prep.main(["cityscapes", "--root", str(root)]) == 0
    train_ids = _mask(root / "gtFine" / "train" / f"{name}_gtFine_labelTrainIds.png")[1]
    assert train_ids.tolist() == [[0, 1, 13, 255], [255, 11, 18, 255]]  # bicycle (33) -> 18, ground (6) -> 255
    assert (root / "leftImg8bit" / "train" / f"{name}_leftImg8bit.png").is_file()
    assert not (root / "gtFine" / "test").exists() and not (root / "leftImg8bit" / "test").exists()
    # without a mirror the official site needs the account: never asked for without a terminal
    monkeypatch.delenv("SEMISEG_MIRROR")
    for env in prep.CREDENTIAL_ENVS:
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(UserError, match="CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD"):
        prep.prepare("cityscapes", tmp_path / "other", Settings.resolve(), prompt=False)


def test_ade20k_is_stored_reduced_once(tmp_path, mirror):
    raw = np.array([[0, 1, 2], [150, 149, 0]], np.uint8)
    serve(mirror, {"ade20k/ADEChallengeData2016.zip": zip_bytes({
        "ADEChallengeData2016/images/training/ADE_train_00000001.jpg": jpeg(2, 3, 0),
        "ADEChallengeData2016/annotations/training/ADE_train_00000001.png": png(raw),
        "ADEChallengeData2016/images/validation/ADE_val_00000001.jpg": jpeg(2, 3, 1),
        "ADEChallengeData2016/annotations/validation/ADE_val_00000001.png": png(raw),
        "ADEChallengeData2016/sceneCategories.txt": b"ADE_train_00000001 airport\n"})},
        tmp_path / "checksums.sha256")
    root = tmp_path / "ade"
    assert prep.main(["ade20k", "--root", str(root)]) == 0
    for split, name in (("training", "ADE_train_00000001"), ("validation", "ADE_val_00000001")):
        assert _mask(root / "annotations" / split / f"{name}.png")[1].tolist() == [[255, 0, 1], [149, 148, 255]]
        assert (root / "images" / split / f"{name}.jpg").is_file()
    assert json.loads((root / prep.MARKER).read_text())["mask_encoding"] == "index"
    with pytest.raises(DataError, match="already reduced masks must not be reduced again"):
        ade_reduce(np.array([[255, 3]], np.uint8), root / "x.png")


def test_checksum_registry_formats_and_errors(tmp_path):
    from semiseg.download import check_space, read_registry

    registry = tmp_path / "sums"
    registry.write_text(f"# a comment\n{'a' * 64}  voc2012/x.tar\n{'b' * 32} *sbd/y.tgz\n\n"
                        f"weights/z.pth sha256:{'c' * 64}\n")
    assert read_registry(registry) == {"voc2012/x.tar": f"sha256:{'a' * 64}", "sbd/y.tgz": f"md5:{'b' * 32}",
                                       "weights/z.pth": f"sha256:{'c' * 64}"}
    registry.write_text(f"{'a' * 64}  ok\nnot-a-hash  voc2012/x.tar\n")
    with pytest.raises(DataError, match=r"sums:2: expected '<md5 or sha256 hex>  <key>'.*'not-a-hash"):
        read_registry(registry)
    with pytest.raises(DataError, match=r"needs about \d+\.\d GiB free under .*, which has"):
        check_space(tmp_path, 1 << 60, "downloading 1 file(s)")


def test_pascal_context_images_and_released_masks(tmp_path, mirror):
    mask = np.array([[0, 59, 255], [12, 0, 1]], np.uint8)
    serve(mirror, {
        "voc2010/VOCtrainval_03-May-2010.tar": tar_bytes({
            "VOCdevkit/VOC2010/JPEGImages/2008_000002.jpg": jpeg(2, 3, 0),
            "VOCdevkit/VOC2010/JPEGImages/2008_004574.jpg": jpeg(2, 3, 1),
            "VOCdevkit/VOC2010/Annotations/2008_000002.xml": b"<annotation/>"}),
        "semiovs/ground_truth_pascal_context.zip": zip_bytes({
            "SegmentationClassContext60/val/2008_000002.png": png(mask),
            "SegmentationClassContext60/train/2008_004574.png": png(mask)})},
        tmp_path / "checksums.sha256")
    root = tmp_path / "pc"
    assert prep.main(["pascal_context", "--root", str(root)]) == 0
    assert sorted(p.name for p in (root / "JPEGImages").iterdir()) == ["2008_000002.jpg", "2008_004574.jpg"]
    for split, name in (("val", "2008_000002"), ("train", "2008_004574")):
        assert _mask(root / "SegmentationClassContext60" / split / f"{name}.png")[1].tolist() == mask.tolist()
    # a mask with an id outside 0..59 is refused and the folder is not marked prepared
    bad = zip_bytes({"x/train/2008_004574.png": png(np.array([[60]], np.uint8))})
    serve(mirror, {"semiovs/ground_truth_pascal_context.zip": bad}, tmp_path / "checksums.sha256")  # last line wins
    with pytest.raises(DataError, match="2008_004574.png: expected one channel of ids 0..59 and 255, found id 60"):
        prep.prepare("pascal_context", tmp_path / "pc2", Settings.resolve())
    assert not (tmp_path / "pc2" / prep.MARKER).exists()


def test_coco_prefers_the_authors_masks_and_checks_them(tmp_path, mirror):
    mask = np.array([[0, 80, 255], [1, 2, 3]], np.uint8)
    images = {"coco/train2017.zip": zip_bytes({"train2017/000000000042.jpg": jpeg(2, 3, 0)}),
              "coco/val2017.zip": zip_bytes({"val2017/000000000007.jpg": jpeg(2, 3, 1)})}
    serve(mirror, {**images, "unimatch/coco_masks.zip": zip_bytes({
        "masks/000000000042.png": png(mask), "masks/000000000007.png": png(mask), "masks/readme.txt": b"x"})},
        tmp_path / "checksums.sha256")
    root = tmp_path / "coco"
    assert prep.main(["coco", "--root", str(root)]) == 0
    assert (root / "masks" / "000000000042.png").read_bytes() == png(mask)
    assert sorted(p.name for p in (root / "masks").iterdir()) == ["000000000007.png", "000000000042.png"]
    assert not mirror.gets("coco/annotations_trainval2017.zip")
    assert "unimatch/coco_masks.zip" in json.loads((root / prep.MARKER).read_text())["archives"]
    # an archive that lacks an image's mask is refused, pointing at the conversion
    serve(mirror, {"unimatch/coco_masks.zip": zip_bytes({"masks/000000000042.png": png(mask)})},
          tmp_path / "checksums.sha256")
    with pytest.raises(DataError, match="no mask for 1 of the 2 images, e.g. 000000000007.png.*--coco-masks instances"):
        prep.prepare("coco", tmp_path / "coco2", Settings.resolve())
    assert not (tmp_path / "coco2" / prep.MARKER).exists()
