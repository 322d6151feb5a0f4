"""Encoder zoo: official weight-file layouts load with zero missing/unexpected keys, shapes, parameter counts.

Each "official" state dict is written from the published architecture (names and shapes spelled out
here or taken from torchvision), not from our modules, filled with random values and saved to disk.
"""

import pytest
import torch
import torch.nn.functional as F
import torchvision

from semiseg.config import config_from_dict
from semiseg.errors import ConfigError
from semiseg.evaluate import predict
from semiseg.protocol import EvalProtocol
from semiseg.models import BACKBONES, build_model, count_parameters, load_pretrained
from semiseg.models.dinov2_vit import DinoV2, interpolate_pos_embed
from semiseg.models.xception import BN_MOMENTUM


def bn(prefix, c):
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def random_file(tmp_path, shapes, name="weights.pth"):
    state = {k: (torch.randint(0, 5, s) if k.endswith("num_batches_tracked") else torch.randn(s))
             for k, s in shapes.items()}
    torch.save(state, tmp_path / name)
    return tmp_path / name, state


def assert_loaded(encoder, path, state, ignored):
    report = load_pretrained(encoder, path)
    assert report == {"missing": [], "unexpected": [], "ignored": ignored}
    own = encoder.state_dict()
    for key in list(own)[:3] + list(own)[-3:]:
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(own[key], state[key]), key


# ---------------------------------------------------------------- ResNet (deep stem, torchvision)

def deep_stem_resnet_file_shapes(layers):
    """The official resnet{50,101}.pth: torchvision names, the deep stem conv1.{0,1,3,4,6}, layer1 width 128."""
    tv = {k: tuple(v.shape) for k, v in torchvision.models.resnet.ResNet(
        torchvision.models.resnet.Bottleneck, layers).state_dict().items()}
    del tv["conv1.weight"]
    tv.update({"conv1.0.weight": (64, 3, 3, 3), **bn("conv1.1", 64), "conv1.3.weight": (64, 64, 3, 3),
               **bn("conv1.4", 64), "conv1.6.weight": (128, 64, 3, 3), **bn("bn1", 128),
               "layer1.0.conv1.weight": (64, 128, 1, 1), "layer1.0.downsample.0.weight": (256, 128, 1, 1)})
    return tv


@pytest.mark.parametrize("name, layers", [("resnet50", [3, 4, 6, 3]), ("resnet101", [3, 4, 23, 3])])
def test_official_deep_stem_resnet_file_loads_exactly(tmp_path, name, layers):
    path, state = random_file(tmp_path, deep_stem_resnet_file_shapes(layers))
    encoder = BACKBONES.get(name)()
    assert_loaded(encoder, path, state, ["fc.weight", "fc.bias"])
    with torch.no_grad():
        c1, c4 = encoder.eval()(torch.randn(1, 3, 64, 64))
    assert c1.shape == (1, 256, 16, 16) and c4.shape == (1, 2048, 4, 4)


def test_torchvision_resnet_file_loads_exactly(tmp_path):
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "resnet50-tv.pth")
    state = torch.load(tmp_path / "resnet50-tv.pth", weights_only=True)
    encoder = BACKBONES.get("tv_resnet50")(8)
    assert_loaded(encoder, tmp_path / "resnet50-tv.pth", state, ["fc.weight", "fc.bias"])
    with torch.no_grad():
        c1, c4 = encoder.eval()(torch.randn(1, 3, 64, 64))
    assert c1.shape == (1, 256, 16, 16) and c4.shape == (1, 2048, 8, 8)


# ---------------------------------------------------------------- Xception-65

def sepconv(prefix, cin, cout):
    return {f"{prefix}.depthwise.weight": (cin, 1, 3, 3), **bn(f"{prefix}.bn1", cin),
            f"{prefix}.pointwise.weight": (cout, cin, 1, 1), **bn(f"{prefix}.bn2", cout)}


def xception_file_shapes():
    """The official xception.pth layout of the UniMatch V1 / PrevMatch code (docs/methods.md §1.3.1)."""
    shapes = {"conv1.weight": (32, 3, 3, 3), **bn("bn1", 32), "conv2.weight": (64, 32, 3, 3), **bn("bn2", 64)}
    widths = [(64, 128), (128, 256), (256, 728)] + [(728, 728)] * 16 + [(728, 1024)]
    for i, (cin, cout) in enumerate(widths, start=1):
        mid = cin if i == 20 else cout  # block 20 grows last
        if cin != cout:
            shapes.update({f"block{i}.skip.weight": (cout, cin, 1, 1), **bn(f"block{i}.skipbn", cout)})
        shapes.update({**sepconv(f"block{i}.sepconv1", cin, mid), **sepconv(f"block{i}.sepconv2", mid, cout),
                       **sepconv(f"block{i}.sepconv3", cout, cout)})
    for name, cin, cout in (("conv3", 1024, 1536), ("conv4", 1536, 1536), ("conv5", 1536, 2048)):
        shapes.update(sepconv(name, cin, cout))
    return shapes


def test_official_xception_file_loads_exactly(tmp_path):
    shapes = xception_file_shapes()
    path, state = random_file(tmp_path, shapes)
    encoder = BACKBONES.get("xception")()
    tracked = [k for k in shapes if k.endswith("num_batches_tracked")]
    assert_loaded(encoder, path, state, tracked)  # the official loader drops 'track' keys
    with torch.no_grad():
        c1, c4 = encoder.eval()(torch.randn(1, 3, 64, 64))
    assert c1.shape == (1, 256, 16, 16) and c4.shape == (1, 2048, 4, 4)


def test_xception_output_stride_8_and_bn_momentum():
    encoder = BACKBONES.get("xception")(8).eval()
    with torch.no_grad():
        c1, c4 = encoder(torch.randn(1, 3, 64, 64))
    assert c1.shape == (1, 256, 16, 16) and c4.shape == (1, 2048, 8, 8)
    momenta = {m.momentum for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {BN_MOMENTUM} == {0.0003}


# ---------------------------------------------------------------- DINOv2

DINO = {"small": (384, 12), "base": (768, 12), "large": (1024, 24)}


def dinov2_file_shapes(size, chunks=0):
    """The official dinov2_vit{s,b,l}14_pretrain.pth layout (37×37+1 positions, mask_token, LayerScale)."""
    d, depth = DINO[size]
    shapes = {"cls_token": (1, 1, d), "pos_embed": (1, 37 * 37 + 1, d), "mask_token": (1, d),
              "patch_embed.proj.weight": (d, 3, 14, 14), "patch_embed.proj.bias": (d,),
              "norm.weight": (d,), "norm.bias": (d,)}
    for i in range(depth):
        b = f"blocks.{i // (depth // chunks)}.{i}" if chunks else f"blocks.{i}"
        shapes.update({f"{b}.norm1.weight": (d,), f"{b}.norm1.bias": (d,),
                       f"{b}.attn.qkv.weight": (3 * d, d), f"{b}.attn.qkv.bias": (3 * d,),
                       f"{b}.attn.proj.weight": (d, d), f"{b}.attn.proj.bias": (d,), f"{b}.ls1.gamma": (d,),
                       f"{b}.norm2.weight": (d,), f"{b}.norm2.bias": (d,),
                       f"{b}.mlp.fc1.weight": (4 * d, d), f"{b}.mlp.fc1.bias": (4 * d,),
                       f"{b}.mlp.fc2.weight": (d, 4 * d), f"{b}.mlp.fc2.bias": (d,), f"{b}.ls2.gamma": (d,)})
    return shapes


@pytest.mark.parametrize("size", ["small", "base"])
def test_official_dinov2_file_loads_exactly(tmp_path, size):
    path, state = random_file(tmp_path, dinov2_file_shapes(size))
    encoder = BACKBONES.get(f"dinov2_{size}")()
    assert_loaded(encoder, path, state, ["mask_token"])
    with torch.no_grad():
        tokens = encoder.eval()(torch.randn(2, 3, 56, 70))
    assert [tuple(t.shape) for t in tokens] == [(2, 20, DINO[size][0])] * 4  # 4×5 patches, no cls token


def test_dinov2_large_layout_matches_the_official_file():
    with torch.device("meta"):
        encoder = BACKBONES.get("dinov2_large")()
    converted, ignored = DinoV2.convert_pretrained({k: torch.empty(s, device="meta")
                                                    for k, s in dinov2_file_shapes("large").items()})
    assert ignored == ["mask_token"]
    assert {k: tuple(v.shape) for k, v in converted.items()} == \
        {k: tuple(v.shape) for k, v in encoder.state_dict().items()}


def test_chunked_dinov2_blocks_are_renamed(tmp_path):
    path, state = random_file(tmp_path, dinov2_file_shapes("small", chunks=4))
    assert "blocks.1.3.norm1.weight" in state
    report = load_pretrained(encoder := BACKBONES.get("dinov2_small")(), path)
    assert report == {"missing": [], "unexpected": [], "ignored": ["mask_token"]}
    assert torch.equal(encoder.state_dict()["blocks.3.norm1.weight"], state["blocks.1.3.norm1.weight"])


def test_dinov2_attention_runs_through_sdpa(monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    with torch.no_grad():
        BACKBONES.get("dinov2_small")()(torch.randn(1, 3, 28, 28))
    assert len(calls) == 12


def test_position_embeddings_are_interpolated_the_dinov2_way():
    pos = torch.randn(1, 37 * 37 + 1, 8)
    assert interpolate_pos_embed(pos, (37, 37)) is pos
    out = interpolate_pos_embed(pos, (4, 6))
    assert out.shape == (1, 25, 8) and torch.equal(out[:, 0], pos[:, 0])
    grid = pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    by_size = F.interpolate(grid, size=(4, 6), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 24, 8)
    assert not torch.allclose(out[:, 1:], by_size, atol=1e-3)  # the +0.1 scale-factor offset matters


# ---------------------------------------------------------------- wrong files, sizes, DPT

def test_wrong_architecture_files_are_rejected_with_the_offending_keys(tmp_path):
    base_head = dict(list(dinov2_file_shapes("base").items())[:20])  # the first keys of a ViT-B/14 file
    path, _ = random_file(tmp_path, base_head, "dinov2_base.pth")
    with pytest.raises(ConfigError, match=r"dinov2_base.pth does not match the DinoV2 encoder \(cls_token: file "
                                          r"\(1, 1, 768\) vs model \(1, 1, 384\)"):
        load_pretrained(BACKBONES.get("dinov2_small")(), path)
    path, _ = random_file(tmp_path, xception_file_shapes(), "xception.pth")
    with pytest.raises(ConfigError, match="xception.pth does not match the DeepStemResNet encoder"):
        load_pretrained(BACKBONES.get("resnet50")(), path)
    path, _ = random_file(tmp_path, deep_stem_resnet_file_shapes([3, 4, 6, 3]), "resnet50.pth")
    with pytest.raises(ConfigError, match="resnet50.pth does not match the DinoV2 encoder .no parameter names"):
        load_pretrained(BACKBONES.get("dinov2_small")(), path)
    torch.save({"weights": [1, 2]}, tmp_path / "list.pth")
    with pytest.raises(ConfigError, match="does not hold a state dict"):
        load_pretrained(BACKBONES.get("xception")(), tmp_path / "list.pth")


def test_pretrained_file_in_the_config_is_loaded(tmp_path, capsys):
    path, state = random_file(tmp_path, dinov2_file_shapes("small"))
    cfg = config_from_dict({"model": {"backbone": "dinov2_small", "pretrained": str(path)},
                            "data": {"crop_size": 56}})
    model = build_model(cfg, 5)
    assert torch.equal(model.backbone.pos_embed, state["pos_embed"])
    assert "0 missing, 0 unexpected, 1 ignored ['mask_token']" in capsys.readouterr().out


def params(backbone, classes=21):
    with torch.device("meta"):
        model = build_model(config_from_dict({"model": {"backbone": backbone}, "data": {"crop_size": 518}}), classes)
    return count_parameters(model) / 1e6, count_parameters(model.backbone) / 1e6


@pytest.mark.parametrize("backbone, classes, total, encoder", [
    ("resnet101", 21, 59.5, 42.6), ("resnet50", 21, 40.5, 23.6), ("xception", 81, 54.7, 37.9),
    ("dinov2_small", 21, 24.8, 22.1), ("dinov2_base", 21, 97.5, 86.6), ("dinov2_large", 21, 335.6, 304.4)])
def test_parameter_counts(backbone, classes, total, encoder):
    """docs/methods.md §1.3: DeepLabV3+ R101 59.5M, R50 40.5M, Xception 54.7M (81 classes); DINOv2 encoders
    22.1/86.6/304.4M with DPT heads of about 2.7/10.9/31.2M."""
    assert params(backbone, classes) == pytest.approx((total, encoder), abs=0.05)


def test_dpt_output_size_and_eval_resizing():
    model = build_model(config_from_dict({"model": {"backbone": "dinov2_small"}, "data": {"crop_size": 56}}), 6).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 56, 70)).shape == (2, 6, 56, 70)
        assert model(torch.randn(1, 3, 60, 60)).shape == (1, 6, 56, 56)  # (14·⌊H/14⌋, 14·⌊W/14⌋)
        assert predict(model, torch.randn(1, 3, 96, 90), 6, EvalProtocol()).shape == (1, 6, 96, 90)  # via 98×84


def test_dinov2_needs_a_crop_multiple_of_14():
    with pytest.raises(ConfigError, match=r"data.crop_size': 321 is not a multiple of 14.*e.g. 322"):
        build_model(config_from_dict({"model": {"backbone": "dinov2_small"}, "data": {"crop_size": 321}}), 21)


def test_lock_backbone_freezes_the_encoder_only():
    from semiseg.optim import build_optimizer

    cfg = config_from_dict({"model": {"backbone": "dinov2_small", "lock_backbone": True}, "data": {"crop_size": 56},
                            "optim": {"name": "adamw"}})
    model = build_model(cfg, 3)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    unused = "fusion.3.rcu1."  # frozen in every DPT: the official head never runs it (DDP needs no unused params)
    assert all(p.requires_grad != n.startswith(unused) for n, p in model.head.named_parameters())
    groups = build_optimizer(model, cfg.optim).param_groups  # frozen encoder: group 0 is empty (docs/methods.md §1.5)
    assert [len(g["params"]) for g in groups] == [0, sum(p.requires_grad for p in model.head.parameters())]
