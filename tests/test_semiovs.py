"""SemiOVS end to end on the demo data: the OOD companion, the train_u_ood mode, the OOD CLI, both methods."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semiseg.data import demo
from semiseg.data.datasets import SegDataset, read_split
from semiseg.data.demo_ood import NUM_OOD, ensure_demo_ood
from semiseg.errors import DataError
from semiseg.tracking import _client
from semiseg.runtime import build_trainer, run_dir_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ood_root(demo_root):
    return ensure_demo_ood(demo_root.parent / f"{demo_root.name}_ood")


def run_ood_cli(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "semiseg.ood", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO)


def test_demo_ood_companion_layout(ood_root):
    entries = read_split(ood_root / "ood.txt")
    assert len(entries) == NUM_OOD
    masks = np.stack([np.array(Image.open(ood_root / m)) for _, m in entries[:64]])
    assert masks.max() <= 5 and not (masks == 255).any()  # OVS-style: class ids only, no ignore
    assert (masks == 0).mean() > 0.5 and (masks > 0).any()
    assert ensure_demo_ood(ood_root) == ood_root  # complete: not regenerated


def test_train_u_ood_pads_with_ignore_and_zeroes_the_mask(ood_root):
    entries = read_split(ood_root / "ood.txt")[:4]
    dataset = SegDataset(ood_root, entries, "train_u_ood", 6, crop_size=160, scale_range=(1.0, 1.0))
    item = dataset[(0, 123)]
    assert set(item) == {"w", "mask", "s1", "s2", "ign"}
    assert item["w"].shape == item["s1"].shape == (3, 160, 160)
    padded = item["ign"] == 255
    size = demo.IMAGE_SIZE  # the whole image, padded to the 160 crop
    assert padded.float().mean() == pytest.approx(1 - size * size / 160 ** 2)
    assert (item["mask"][padded] == 0).all() and item["mask"].max() <= 5


@pytest.mark.parametrize("method", ["semiovs_unimatch", "semiovs_prevmatch"])
def test_semiovs_trains_end_to_end_on_demo(make_config, ood_root, method):
    cfg = make_config(f"method={method}", "loss.conf_thresh=0.0", "prevmatch.conf_thresh=0.0")
    trainer = build_trainer(cfg)
    trainer.train()
    metrics = _client(cfg.runtime.tracking_uri).get_run(trainer.run_id).data.metrics
    assert metrics["train/loss_ood"] > 0 and metrics["train/loss_s1"] > 0
    if method == "semiovs_prevmatch":
        assert metrics["train/loss_prev"] > 0 and metrics["train/n_snapshots"] == 1


def test_ood_cli_predicts_checks_and_feeds_semiovs(tmp_path, make_config, ood_root):
    trainer = build_trainer(make_config("method=supervised", "train.epochs=1", folder="sup"))
    trainer.train()
    checkpoint = run_dir_of(trainer.cfg) / "best.pth"
    target = tmp_path / "ood_pred"
    target.mkdir()
    images = [img for img, _ in read_split(ood_root / "ood.txt")[:12]]
    (target / "images.txt").write_text("".join(f"{ood_root / img}\n" for img in images))
    done = run_ood_cli("predict", "--checkpoint", checkpoint, "--root", target, "--images", "images.txt",
                       "--device", "cpu")
    assert done.returncode == 0, done.stderr
    entries = read_split(target / "ood.txt")
    assert len(entries) == 12
    mask = Image.open(target / entries[0][1])
    assert mask.mode == "P" and mask.size == (demo.IMAGE_SIZE, demo.IMAGE_SIZE) and np.array(mask).max() <= 5

    checked = run_ood_cli("check", "--root", target, "--dataset", "demo")
    assert checked.returncode == 0 and checked.stdout.startswith("ok:"), checked.stderr

    Image.fromarray(np.full(mask.size, 9, np.uint8)).save(target / entries[0][1])  # class 9 does not exist
    bad = run_ood_cli("check", "--root", target, "--dataset", "demo")
    assert bad.returncode == 2 and "class id 9" in bad.stderr and "Traceback" not in bad.stderr

    for _, mask_rel in entries[:1]:  # repair, then train on the predicted set
        Image.fromarray(np.zeros(mask.size, np.uint8)).save(target / mask_rel)
    cfg = make_config("method=semiovs_unimatch", f"semiovs.ood_root={target}", "train.epochs=1", folder="ovs")
    assert build_trainer(cfg).train().epoch == 1


def test_missing_ood_source_is_a_clear_error(make_config, tmp_path):
    with pytest.raises(DataError, match="semiovs.ood_root: folder .*nowhere does not exist"):
        build_trainer(make_config("method=semiovs_unimatch", f"semiovs.ood_root={tmp_path / 'nowhere'}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="semiovs.ood_list: list file .*ood.txt does not exist"):
        build_trainer(make_config("method=semiovs_unimatch", f"semiovs.ood_root={tmp_path / 'empty'}"))
