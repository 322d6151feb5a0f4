"""``semiseg.experiments.official`` on every official config family: UniMatch, UniMatch V2, PrevMatch, CorrMatch and
SemiOVS. Each test writes a YAML with the keys (and the recipe values) of that family's official files, in the
official layout, converts it through the real command and validates the result as a run config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from semiseg.experiments.official import load_official, main
from semiseg.config import config_from_dict
from semiseg.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

CE = {"name": "CELoss", "kwargs": {"ignore_index": 255}}
OHEM = {"name": "OHEM", "kwargs": {"ignore_index": 255, "thresh": 0.7, "min_kept": 200000}}
DEEPLAB_OS16 = {"model": "deeplabv3plus", "backbone": "resnet101",
                "replace_stride_with_dilation": [False, False, True], "dilations": [6, 12, 18]}


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _convert(path: Path, method: str, gpus: int = 0):
    """The converted partial config (through the CLI's own function) and the validated run config."""
    partial = load_official(path, gpus)
    return partial, config_from_dict({**partial, "method": method})


def test_unimatch_family(tmp_path, capsys):
    pascal = {"dataset": "pascal", "nclass": 21, "crop_size": 321, "data_root": "Your/Pascal/Path", "epochs": 80,
              "batch_size": 2, "lr": 0.001, "lr_multi": 10.0, "criterion": CE, "conf_thresh": 0.95, **DEEPLAB_OS16}
    coco = {"dataset": "coco", "nclass": 81, "crop_size": 513, "data_root": "Your/COCO/Path", "epochs": 30,
            "batch_size": 2, "lr": 0.004, "lr_multi": 10.0, "criterion": CE, "conf_thresh": 0.95,
            "backbone": "xception", "dilations": [6, 12, 18]}
    city = {"dataset": "cityscapes", "nclass": 19, "crop_size": 801, "data_root": "Your/Cityscapes/Path",
            "epochs": 240, "batch_size": 2, "lr": 0.005, "lr_multi": 1.0, "criterion": OHEM, "conf_thresh": 0,
            "backbone": "resnet101", "replace_stride_with_dilation": [False, False, True], "dilations": [6, 12, 18]}
    _, cfg = _convert(_write(tmp_path, "pascal", pascal), "unimatch", gpus=4)
    assert (cfg.data.crop_size, cfg.optim.name, cfg.optim.lr, cfg.optim.reference_batch, cfg.model.output_stride) \
        == (321, "sgd", 0.001, 8, 16)
    _, cfg = _convert(_write(tmp_path, "coco", coco), "unimatch", gpus=4)
    assert (cfg.model.backbone, cfg.optim.name, cfg.data.root) == ("xception", "sgd", "Your/COCO/Path")
    _, cfg = _convert(_write(tmp_path, "city", city), "unimatch", gpus=4)
    assert (cfg.loss.criterion, cfg.loss.ohem_min_kept, cfg.loss.conf_thresh) == ("ohem", 200000, 0.0)
    assert main([str(tmp_path / "city.yaml"), "--gpus", "4"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["optim"]["reference_batch"] == 8


def test_unimatch_v2_family(tmp_path):
    common = {"nclass": 21, "crop_size": 518, "epochs": 60, "batch_size": 4, "lr": 0.000005, "lr_multi": 40.0,
              "criterion": CE, "conf_thresh": 0.95, "model": "dpt", "backbone": "dinov2_small"}
    pascal = {"dataset": "pascal", "data_root": "Your/PASCAL/Path", **common, "lock_backbone": False}
    ade = {"dataset": "ade20k", "data_root": "Your/ADE20K/Path", **common, "nclass": 150, "batch_size": 2,
           "lock_backbone": True}
    _, cfg = _convert(_write(tmp_path, "pascal", pascal), "unimatch_v2", gpus=4)
    assert (cfg.optim.name, cfg.optim.weight_decay, cfg.optim.lr_multi, cfg.optim.reference_batch) == \
        ("adamw", 0.01, 40.0, 16)
    _, cfg = _convert(_write(tmp_path, "ade", ade), "unimatch_v2", gpus=4)
    assert cfg.model.lock_backbone is True and cfg.data.dataset == "ade20k" and cfg.optim.reference_batch == 8


def test_prevmatch_family_reads_the_prev_block(tmp_path):
    prev = {"list_max_len": 8, "model_num": 3, "random_select": True, "conf_thresh": 0.9, "base_only_epoch": 0}
    pascal = {"dataset": "pascal", "nclass": 21, "crop_size": 321, "data_root": "../data/pascal", "epochs": 80,
              "batch_size": 8, "lr": 0.001, "lr_multi": 10.0, "criterion": CE, "conf_thresh": 0.95, "amp": True,
              "prev": prev, **DEEPLAB_OS16, "backbone": "resnet50", "save_map": False}
    partial, cfg = _convert(_write(tmp_path, "pascal", pascal), "prevmatch", gpus=1)
    assert partial["prevmatch"] == {"max_len": 8, "num_models": 3, "random_select": True, "conf_thresh": 0.9,
                                    "base_only_epoch": 0}
    assert (cfg.train.amp, cfg.optim.reference_batch, cfg.prevmatch.conf_mode) == ("fp16", 8, "pixelwise")
    coco = {"dataset": "coco", "nclass": 81, "crop_size": 513, "epochs": 30, "batch_size": 4, "lr": 0.004,
            "lr_multi": 10.0, "criterion": CE, "conf_thresh": 0.95, "amp": True, "backbone": "xception",
            "dilations": [6, 12, 18], "save_map": False,
            "prev": {**prev, "list_max_len": 5, "base_only_epoch": 5}}
    _, cfg = _convert(_write(tmp_path, "coco", coco), "prevmatch")
    assert (cfg.prevmatch.max_len, cfg.prevmatch.base_only_epoch) == (5, 5)
    city = {"dataset": "cityscapes", "nclass": 19, "crop_size": 801, "epochs": 240, "batch_size": 4, "lr": 0.005,
            "lr_multi": 1.0, "criterion": OHEM, "conf_thresh": 0, "amp": True, "backbone": "resnet50",
            "replace_stride_with_dilation": [False, False, True], "dilations": [6, 12, 18], "save_map": False,
            "prev": {**prev, "conf_thresh": 0}}
    _, cfg = _convert(_write(tmp_path, "city", city), "prevmatch")
    assert (cfg.prevmatch.conf_mode, cfg.prevmatch.conf_thresh) == ("pixelavg", 0.0)  # chosen by dataset
    with pytest.raises(ConfigError, match=r"'prev.ema' has no counterpart.*valid: list_max_len"):
        load_official(_write(tmp_path, "bad", {**pascal, "prev": {**prev, "ema": 0.99}}))
    with pytest.raises(ConfigError, match=r"'prev' must be a mapping"):
        load_official(_write(tmp_path, "bad", {**pascal, "prev": 3}))


def test_corrmatch_family_accepts_its_no_op_keys(tmp_path):
    pascal = {"dataset": "pascal", "nclass": 21, "crop_size": 321, "data_root": "your/pascal/path", "epochs": 80,
              "batch_size": 4, "lr": 0.001, "lr_multi": 10.0, "criterion": CE, "thresh_init": 0.85,
              "backbone": "resnet101", "pretrain": True, "multi_grid": False,
              "replace_stride_with_dilation": [False, True, True], "dilations": [12, 24, 36]}
    city = {"dataset": "cityscapes", "nclass": 19, "crop_size": 801, "data_root": "your/cityscape/path",
            "epochs": 240, "batch_size": 2, "lr": 0.005, "lr_multi": 1.0,
            "criterion": {**OHEM, "kwargs": {**OHEM["kwargs"], "min_kept": 100000}}, "conf_thresh": 0.0,
            "backbone": "resnet101", "multi_grid": False, "replace_stride_with_dilation": [False, True, True],
            "dilations": [12, 24, 36]}
    partial, cfg = _convert(_write(tmp_path, "pascal", pascal), "corrmatch", gpus=2)
    assert "pretrained" not in partial.get("model", {})
    assert (cfg.model.output_stride, cfg.model.aspp_dilations, cfg.corrmatch.thresh_init) == (8, [12, 24, 36], 0.85)
    _, cfg = _convert(_write(tmp_path, "city", city), "corrmatch", gpus=2)
    assert (cfg.loss.ohem_min_kept, cfg.optim.reference_batch) == (100000, 4)
    with pytest.raises(ConfigError, match=r"multi_grid: True is not supported.*valid: multi_grid: False"):
        load_official(_write(tmp_path, "bad", {**city, "multi_grid": True}))
    with pytest.raises(ConfigError, match=r"pretrain: False is not supported.*valid: pretrain: True"):
        load_official(_write(tmp_path, "bad", {**pascal, "pretrain": False}))


def test_semiovs_family_maps_the_ood_stream(tmp_path):
    common = {"crop_size": 321, "dataset_ood": "coco", "data_root_ood": "../data/coco", "epochs": 80,
              "batch_size": 8, "lr": 0.001, "lr_multi": 10.0, "criterion": CE, "conf_thresh": 0.95, "amp": True,
              "lambda": 1.0, "prev": {"conf_thresh": 0.9, "base_only_epoch": 0}, **DEEPLAB_OS16, "save_map": False}
    pascal = {"dataset": "pascal", "nclass": 21, "data_root": "../data/pascal", **common}
    pc60 = {"dataset": "pc60", "nclass": 60, "data_root": "../data/pascal_context", **common}
    _, cfg = _convert(_write(tmp_path, "pascal", pascal), "semiovs_prevmatch", gpus=1)
    assert (cfg.semiovs.ood_root, cfg.semiovs.ood_lambda, cfg.prevmatch.conf_thresh) == ("../data/coco", 1.0, 0.9)
    _, cfg = _convert(_write(tmp_path, "pc60", pc60), "semiovs_unimatch", gpus=1)
    assert cfg.data.dataset == "pascal_context"
    with pytest.raises(ConfigError, match=r"dataset_ood 'imagenet' is not known; valid: coco, web_data"):
        load_official(_write(tmp_path, "bad", {**pascal, "dataset_ood": "imagenet"}))
    with pytest.raises(ConfigError, match=r"nclass 59 does not match dataset 'pascal_context'"):
        load_official(_write(tmp_path, "bad", {**pc60, "nclass": 59}))


def test_unknown_key_exits_2_naming_file_and_key(tmp_path):
    bad = _write(tmp_path, "bad", {"dataset": "pascal", "ema_ratio": 0.99})
    out = subprocess.run([sys.executable, "-m", "semiseg.experiments.official", str(bad)], capture_output=True,
                         text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "bad.yaml" in out.stderr and "'ema_ratio'" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
