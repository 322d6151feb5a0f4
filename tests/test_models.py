"""Models: the official deep-stem ResNet layout, DeepLabV3+ sizes, the FP forward, weight loading."""

import pytest
import torch

from semiseg.config import config_from_dict
from semiseg.errors import ConfigError
from semiseg.models import BACKBONES, build_model, count_parameters, load_pretrained


def model_for(backbone, classes=21, **model):
    cfg = config_from_dict({"model": {"backbone": backbone, **model}})
    return build_model(cfg, classes)


def test_resnet101_deeplab_matches_the_official_parameter_count():
    assert count_parameters(model_for("resnet101")) / 1e6 == pytest.approx(59.5, abs=0.05)  # official log: 59.5M
    assert count_parameters(model_for("resnet50")) / 1e6 == pytest.approx(40.5, abs=0.05)


def test_deep_stem_parameter_names():
    names = set(BACKBONES.get("resnet50")().state_dict())
    for key in ("conv1.0.weight", "conv1.1.weight", "conv1.3.weight", "conv1.4.weight", "conv1.6.weight",
                "bn1.weight", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight"):
        assert key in names, key
    assert not any(k.startswith("fc.") for k in names)
    assert BACKBONES.get("resnet50")().layer1[0].conv1.in_channels == 128


@pytest.mark.parametrize("stride, size", [(16, 5), (8, 9)])
def test_output_stride(stride, size):
    encoder = BACKBONES.get("resnet50")(stride).eval()
    with torch.no_grad():
        c1, c4 = encoder(torch.randn(1, 3, 65, 65))
    assert c1.shape == (1, 256, 17, 17) and c4.shape == (1, 2048, size, size)


def test_fp_forward_returns_clean_and_perturbed_logits():
    model = model_for("tiny", 6, output_stride=8, aspp_dilations=[1, 2, 3]).train()
    x = torch.randn(3, 3, 40, 40)
    clean, perturbed = model(x, need_fp=True)
    assert clean.shape == perturbed.shape == (3, 6, 40, 40)
    assert not torch.allclose(clean, perturbed)
    assert model.eval()(x).shape == (3, 6, 40, 40)


def test_load_pretrained_reports_keys_and_rejects_foreign_files(tmp_path):
    encoder = BACKBONES.get("resnet50")()
    state = encoder.state_dict()
    state["fc.weight"] = torch.zeros(1000, 2048)  # an ImageNet checkpoint carries the classifier
    state["aux.weight"] = torch.zeros(3)
    del state["layer4.2.bn3.running_mean"]
    torch.save(state, tmp_path / "resnet50.pth")
    report = load_pretrained(BACKBONES.get("resnet50")(), tmp_path / "resnet50.pth")
    assert report == {"missing": ["layer4.2.bn3.running_mean"], "unexpected": ["aux.weight"], "ignored": ["fc.weight"]}

    torch.save(BACKBONES.get("tiny")().state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(ConfigError, match="does not match"):
        load_pretrained(BACKBONES.get("resnet50")(), tmp_path / "tiny.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot load"):
        load_pretrained(encoder, tmp_path / "junk.pth")
    with pytest.raises(ConfigError, match="does not exist"):
        load_pretrained(encoder, tmp_path / "absent.pth")


def test_registry_lists_by_pattern():
    assert BACKBONES.names("resnet*") == ["resnet50", "resnet101"]
