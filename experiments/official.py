"""Read the official repos' YAML configs (UniMatch, UniMatch V2, PrevMatch, CorrMatch, SemiOVS) as our config.

An experiment can start from one with a top-level ``official: {file: PATH, gpus: N}`` (its own ``defaults``
still win), and ``python -m semiseg.experiments.official PATH --gpus N`` prints the converted config. ``gpus`` is the
number of GPUs the official run used (their configs only say it in comments, e.g. ``# per GPU x 4 GPUs``): it
sets ``optim.reference_batch`` = batch_size x gpus, so the LR is scaled when a cell uses another global batch.

Key mapping (official → ours); every key of the 15 official files (UniMatch 3, UniMatch V2 4, PrevMatch 4,
CorrMatch 2, SemiOVS 2) is covered:

=================================  ==========================================================================
``dataset``                        ``data.dataset`` (``pc60``, SemiOVS's Pascal Context, → ``pascal_context``)
``data_root``                      ``data.root``
``nclass``                         checked against the dataset's class count
``crop_size``                      ``data.crop_size``
``epochs``                         ``train.epochs``
``batch_size``                     ``train.batch_size`` (per GPU); with ``gpus``: ``optim.reference_batch``
``lr`` / ``lr_multi``              ``optim.lr`` / ``optim.lr_multi``
``criterion.name``                 ``loss.criterion``: CELoss → ce, OHEM → ohem
``criterion.kwargs.thresh``        ``loss.ohem_thresh``
``criterion.kwargs.min_kept``      ``loss.ohem_min_kept``
``criterion.kwargs.ignore_index``  must be 255
``conf_thresh``                    ``loss.conf_thresh``
``model``                          deeplabv3plus → SGD (momentum 0.9, wd 1e-4); dpt → AdamW (wd 0.01)
``backbone``                       ``model.backbone`` (resnet50/101, xception, dinov2_small/base/large)
``replace_stride_with_dilation``   ``model.output_stride``: [F, F, T] → 16, [F, T, T] → 8
``dilations``                      ``model.aspp_dilations``
``lock_backbone``                  ``model.lock_backbone``
``pretrain`` (CorrMatch)           true only: the ImageNet encoder, which every other official config loads
                                   without saying so; our encoder weights come from ``model.pretrained``
``multi_grid`` (CorrMatch)         false only (plain dilation, a no-op); true is not implemented
``thresh_init`` (CorrMatch)        ``corrmatch.thresh_init``
``prev.list_max_len`` (PrevMatch)  ``prevmatch.max_len``
``prev.model_num``                 ``prevmatch.num_models``
``prev.random_select``             ``prevmatch.random_select``
``prev.conf_thresh``               ``prevmatch.conf_thresh``
``prev.base_only_epoch``           ``prevmatch.base_only_epoch``
(a ``prev`` block on Cityscapes)   ``prevmatch.conf_mode: pixelavg`` (the official code picks it by dataset)
``lambda`` (SemiOVS)               ``semiovs.ood_lambda``
``dataset_ood`` (SemiOVS)          coco or web_data: names the OOD source only; the images and pseudo-labels
                                   are what ``semiovs.ood_root`` / ``semiovs.ood_list`` point at
``data_root_ood`` (SemiOVS)        ``semiovs.ood_root``
``amp``                            ``train.amp``: true → fp16 (GradScaler), false → off
``save_map``                       ignored: it only makes the official evaluate/inference scripts write maps
=================================  ==========================================================================

Any other key, or a value with no counterpart (e.g. ``multi_grid: True``), is an error naming it, so a recipe
is never silently changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from semiseg.config import load_yaml, set_dotted
from semiseg.errors import ConfigError

_DIRECT = {"data_root": "data.root", "crop_size": "data.crop_size",
           "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "optim.lr", "lr_multi": "optim.lr_multi",
           "conf_thresh": "loss.conf_thresh", "backbone": "model.backbone", "dilations": "model.aspp_dilations",
           "lock_backbone": "model.lock_backbone", "thresh_init": "corrmatch.thresh_init",
           "lambda": "semiovs.ood_lambda", "data_root_ood": "semiovs.ood_root"}
#: PrevMatch's (and SemiOVS's) ``prev:`` block
_PREV = {"list_max_len": "prevmatch.max_len", "model_num": "prevmatch.num_models",
         "random_select": "prevmatch.random_select", "conf_thresh": "prevmatch.conf_thresh",
         "base_only_epoch": "prevmatch.base_only_epoch"}
#: official dataset name → ours, where they differ
_DATASETS = {"pc60": "pascal_context"}
#: keys accepted only with the value that changes nothing here → why
_NO_OPS = {"pretrain": (True, "the ImageNet encoder, as every official recipe; set model.pretrained instead"),
           "multi_grid": (False, "multi-grid dilation is not implemented")}
_OOD_SOURCES = ("coco", "web_data")
_CRITERIA = {"CELoss": "ce", "OHEM": "ohem"}
_OPTIMIZERS = {"deeplabv3plus": {"name": "sgd", "momentum": 0.9, "weight_decay": 0.0001},
               "dpt": {"name": "adamw", "weight_decay": 0.01}}
_STRIDES = {(False, False, True): 16, (False, True, True): 8}


def _criterion(out: dict[str, Any], value: Any, source: str) -> None:
    name = (value or {}).get("name")
    if name not in _CRITERIA:
        raise ConfigError(f"{source}: criterion.name {name!r} is not known; valid: {', '.join(_CRITERIA)}")
    set_dotted(out, "loss.criterion", _CRITERIA[name])
    kwargs = (value or {}).get("kwargs") or {}
    if kwargs.get("ignore_index", 255) != 255:
        raise ConfigError(f"{source}: criterion.kwargs.ignore_index must be 255, got {kwargs['ignore_index']}")
    if "thresh" in kwargs:
        set_dotted(out, "loss.ohem_thresh", kwargs["thresh"])
    if "min_kept" in kwargs:
        set_dotted(out, "loss.ohem_min_kept", kwargs["min_kept"])


def _prev_block(out: dict[str, Any], value: Any, dataset: Any, source: str) -> None:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: 'prev' must be a mapping of {', '.join(_PREV)}, got {value!r}")
    for key, item in value.items():
        if key not in _PREV:
            raise ConfigError(f"{source}: key 'prev.{key}' has no counterpart in semiseg; valid: {', '.join(_PREV)}")
        set_dotted(out, _PREV[key], item)
    if dataset == "cityscapes":  # prevmatch.py / semiovs_prevmatch.py choose the loss mode by dataset
        set_dotted(out, "prevmatch.conf_mode", "pixelavg")


def convert_official(data: dict[str, Any], gpus: int = 0, source: str = "official config") -> dict[str, Any]:
    """Our partial run config from an official YAML mapping; ``gpus`` > 0 also sets ``optim.reference_batch``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _DIRECT:
            set_dotted(out, _DIRECT[key], value)
        elif key == "dataset":
            set_dotted(out, "data.dataset", _DATASETS.get(value, value))
        elif key in ("nclass", "save_map"):
            continue  # nclass is checked below, once the dataset is known; save_map only affects evaluate.py
        elif key in _NO_OPS:
            wanted, why = _NO_OPS[key]
            if value is not wanted:
                raise ConfigError(f"{source}: {key}: {value!r} is not supported ({why}); valid: {key}: {wanted}")
        elif key == "dataset_ood":
            if value not in _OOD_SOURCES:
                raise ConfigError(f"{source}: dataset_ood {value!r} is not known; valid: {', '.join(_OOD_SOURCES)}")
        elif key == "prev":
            _prev_block(out, value, data.get("dataset"), source)
        elif key == "criterion":
            _criterion(out, value, source)
        elif key == "model":
            if value not in _OPTIMIZERS:
                raise ConfigError(f"{source}: model {value!r} is not known; valid: {', '.join(_OPTIMIZERS)}")
            out.setdefault("optim", {}).update(_OPTIMIZERS[value])
        elif key == "replace_stride_with_dilation":
            stride = _STRIDES.get(tuple(bool(v) for v in value or []))
            if stride is None:
                raise ConfigError(f"{source}: replace_stride_with_dilation {value!r} is not supported; valid: "
                                  "[False, False, True] (output stride 16) or [False, True, True] (8)")
            set_dotted(out, "model.output_stride", stride)
        elif key == "amp":
            set_dotted(out, "train.amp", "fp16" if value else "off")
        else:
            raise ConfigError(f"{source}: key {key!r} has no counterpart in semiseg (see experiments/official.py "
                              f"for the mapping); remove it or set the equivalent in the experiment")
    if "model" not in data and "backbone" in data:  # configs without a model key: DINOv2 means DPT
        family = "dpt" if str(data["backbone"]).startswith("dinov2") else "deeplabv3plus"
        out.setdefault("optim", {}).update(_OPTIMIZERS[family])
    if gpus:
        set_dotted(out, "optim.reference_batch", int(data.get("batch_size", 0)) * gpus)
    if "nclass" in data and "dataset" in data:
        from semiseg.data.datasets import DATASETS

        name = _DATASETS.get(data["dataset"], data["dataset"])
        spec = DATASETS.get(name)
        if spec.num_classes != data["nclass"]:
            raise ConfigError(f"{source}: nclass {data['nclass']} does not match dataset {name!r}, "
                              f"which has {spec.num_classes} classes")
    return out


def load_official(path: str | Path, gpus: int = 0) -> dict[str, Any]:
    """:func:`convert_official` of a YAML file; errors name the file."""
    return convert_official(load_yaml(path), gpus, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m semiseg.experiments.official", description=__doc__.split("\n\n")[0],
        epilog="example: python -m semiseg.experiments.official UniMatch/configs/pascal.yaml --gpus 4")
    parser.add_argument("config", help="an official YAML config, e.g. UniMatch/configs/pascal.yaml")
    parser.add_argument("--gpus", type=int, default=0,
                        help="GPUs of the official run (sets optim.reference_batch = batch_size x gpus), e.g. 4")
    args = parser.parse_args(argv)
    print(yaml.safe_dump(load_official(args.config, args.gpus), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    from semiseg.cli import run_cli

    sys.exit(run_cli(main))
