"""The catalog check: registered names and the requirements plugins declare, without importing them into config."""

import subprocess
import sys

import pytest

from semiseg import catalog
from semiseg.config import config_from_dict
from semiseg.errors import ConfigError


def test_config_imports_no_plugin():
    code = ("import sys, semiseg.config as c; c.load_config; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm', 'mlflow') "
            "or m.startswith(('semiseg.methods', 'semiseg.models', 'semiseg.data', 'semiseg.catalog'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


@pytest.mark.parametrize("data, fragments", [
    ({"model": {"backbone": "dinov2_small"}, "data": {"crop_size": 321}},
     ["key 'data.crop_size'", "321", "multiple of 14", "backbone 'dinov2_small'", "e.g. 322"]),
    ({"method": "corrmatch", "model": {"backbone": "dinov2_small"}, "data": {"crop_size": 56}},
     ["key 'model.backbone'", "'corrmatch' needs a deeplabv3plus head", "'dinov2_small' builds dpt",
      "resnet101", "tiny"]),
    ({"method": "unimatch_v2", "model": {"backbone": "tiny"}},
     ["key 'unimatch_v2.comp_drop'", "needs a dpt head", "backbone 'tiny'", "dinov2_small",
      "unimatch_v2.comp_drop=false"]),
    ({"model": {"backbone": "resnet50", "pretrained": "demo_pretext"}},
     ["key 'model.pretrained'", "'demo_pretext'", "backbone 'tiny', not 'resnet50'"]),
])
def test_requirements_name_key_value_and_fix(data, fragments):
    with pytest.raises(ConfigError) as info:
        catalog.check(config_from_dict(data))
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize("data", [
    {},
    {"method": "unimatch_v2", "model": {"backbone": "dinov2_small"}, "data": {"crop_size": 56}},
    {"method": "unimatch_v2", "model": {"backbone": "tiny"}, "unimatch_v2": {"comp_drop": False}},
    {"method": "corrmatch", "model": {"backbone": "tiny", "pretrained": "demo_pretext"}, "data": {"crop_size": 64}},
    {"method": "fixmatch_v2", "model": {"backbone": "resnet101"}},
])
def test_compatible_configs_pass(data):
    assert catalog.problems(config_from_dict(data)) == []


def test_every_problem_is_reported():
    cfg = config_from_dict({"method": "corrmatch", "model": {"backbone": "dinov2_base", "pretrained": "demo_pretext"}})
    assert [p.split(":")[0] for p in catalog.problems(cfg)] == [
        "key 'data.crop_size'", "key 'model.backbone'", "key 'model.pretrained'"]
