"""Config schema: validation errors name key, value and what is valid; hashes are stable."""

import subprocess
import sys

import pytest

from semiseg.catalog import check
from semiseg.config import (apply_overrides, config_from_dict, config_hash, identity_dict, load_config,
                            recipe_hash)
from semiseg.errors import ConfigError


def test_defaults_validate():
    cfg = config_from_dict({})
    assert cfg.method == "unimatch" and cfg.model.backbone == "resnet101"


@pytest.mark.parametrize("data, expected", [
    ({"train": {"epcohs": 3}}, ["unknown key 'train.epcohs'", "did you mean 'train.epochs'"]),
    ({"methd": "unimatch"}, ["unknown key 'methd'", "did you mean 'method'"]),
    ({"train": {"epochs": "ten"}}, ["train.epochs", "expected an integer", "'ten'"]),
    ({"train": {"epochs": 2.5}}, ["train.epochs", "expected an integer", "2.5"]),
    ({"train": {"epochs": 0}}, ["train.epochs", "out of range", ">= 1"]),
    ({"loss": {"conf_thresh": 1.5}}, ["loss.conf_thresh", "1.5", "<= 1"]),
    ({"method": "unimatch_v3"}, ["key 'method'", "'unimatch_v3'", "valid: supervised, fixmatch, unimatch"]),
    ({"data": {"dataset": "imagenet"}}, ["data.dataset", "'imagenet'", "demo"]),
    ({"model": {"backbone": "vgg16"}}, ["model.backbone", "'vgg16'", "resnet101"]),
    ({"train": {"amp": "fp8"}}, ["train.amp", "'fp8'", "off, auto, bf16, fp16"]),
    ({"data": {"split": 132}}, ["data.split", "expected a string", "quote it"]),
    ({"train": 5}, ["section 'train'", "mapping"]),
    ({"data": {"scale_range": [2.0, 0.5]}}, ["data.scale_range", "[2.0, 0.5]", "0 < low <= high"]),
    ({"model": {"aspp_dilations": [6, "x", 18]}}, ["model.aspp_dilations[1]", "'x'"]),
])
def test_validation_messages(data, expected):
    with pytest.raises(ConfigError) as info:
        check(config_from_dict(data))  # registered names: the catalog check
    for fragment in expected:
        assert fragment in str(info.value)


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epochs: -1\n")
    with pytest.raises(ConfigError, match=r"run.yaml: key 'train.epochs'"):
        load_config(path)
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_overrides_parse_yaml_values():
    data = apply_overrides({"train": {"epochs": 3}}, ["train.epochs=5", "optim.lr=2e-3", "data.split='1_32'"])
    cfg = config_from_dict(data)
    assert cfg.train.epochs == 5 and cfg.optim.lr == 0.002 and cfg.data.split == "1_32"
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.epochs"])


def test_a_bare_off_is_the_choice_off_not_false():
    """YAML 1.1 reads off as false: a string key whose choices include 'off' takes it as meant."""
    assert config_from_dict(apply_overrides({}, ["train.amp=bf16", "train.amp=off"])).train.amp == "off"
    with pytest.raises(ConfigError, match="unknown value 'on'; valid: off, auto, bf16, fp16"):
        config_from_dict(apply_overrides({}, ["train.amp=on"]))
    with pytest.raises(ConfigError, match="true/false: quote it"):
        config_from_dict(apply_overrides({}, ["data.split=yes"]))


def test_hash_is_stable_and_ignores_runtime():
    a = config_from_dict({"optim": {"lr": 1}, "runtime": {"num_workers": 4}})
    b = config_from_dict({"optim": {"lr": 1.0}, "runtime": {"output_dir": "/elsewhere"}})
    assert config_hash(a) == config_hash(b)  # int/float spelling and runtime settings do not matter
    assert config_hash(a) != config_hash(config_from_dict({"optim": {"lr": 2}}))
    assert config_hash(a) != config_hash(config_from_dict({"seed": 1, "optim": {"lr": 1}}))


def test_hash_covers_only_values_off_the_schema_defaults():
    """A new option with a behaviour-keeping default must not re-hash the cells of existing runs."""
    cfg = config_from_dict({"optim": {"lr": 2}, "model": {"aspp_dilations": [2, 4, 6]}, "runtime": {"threads": 1}})
    assert identity_dict(cfg) == {"optim": {"lr": 2.0}, "model": {"aspp_dilations": [2, 4, 6]}}
    explicit = config_from_dict({"optim": {"lr": 2}, "model": {"aspp_dilations": [2, 4, 6]},
                                 "eval": {"center_crop_until_last": 0}, "seed": 0})
    assert config_hash(explicit) == config_hash(cfg)
    assert identity_dict(config_from_dict({})) == {}
    assert recipe_hash(config_from_dict({"seed": 3})) == recipe_hash(config_from_dict({}))


def test_hash_is_the_same_in_another_process():
    code = ("from semiseg.config import config_from_dict, config_hash;"
            "print(config_hash(config_from_dict({'method': 'fixmatch', 'data': {'split': '92'}})))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert other == config_hash(config_from_dict({"method": "fixmatch", "data": {"split": "92"}}))
