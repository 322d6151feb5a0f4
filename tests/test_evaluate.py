"""Evaluation protocols of docs/methods.md §1.6 against its worked examples and a float64 reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semiseg.config import EvalConfig
from semiseg.evaluate import center_crop, evaluate, forward_at_multiple, predict, sliding_window, window_starts
from semiseg.protocol import EvalProtocol, describe_schedule, epoch_protocol, resolve_protocol

C = 5


class RandomLogits(nn.Module):
    """A fixed random 3×3 conv (zero padded): logits that depend on the window's borders, like a real net."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, C, 3, padding=1)
        with torch.no_grad():
            g = torch.Generator().manual_seed(seed)
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 2)
            self.conv.bias.copy_(torch.randn(C, generator=g))

    def forward(self, x):
        return self.conv(x)


def reference_sliding(model: nn.Module, img: torch.Tensor, crop: int, stride: int, shift: bool) -> torch.Tensor:
    """The official loops, literally, in float64: V1 truncates border windows, V2 clamps them to full size."""
    model = model.double()
    img = img.double()
    _, _, h, w = img.shape
    total = torch.zeros(1, C, h, w, dtype=torch.float64)
    row = 0
    while True:
        col = 0
        while True:
            window = img[:, :, row:min(h, row + crop), col:min(w, col + crop)]
            total[:, :, row:min(h, row + crop), col:min(w, col + crop)] += model(window).softmax(dim=1)
            if shift:
                if col + crop >= w:
                    break
                col = min(col + stride, w - crop)
            else:
                col += stride
                if col >= w:
                    break
        if shift:
            if row + crop >= h:
                break
            row = min(row + stride, h - crop)
        else:
            row += stride
            if row >= h:
                break
    return total


def test_window_starts_match_the_spec_examples():
    assert window_starts(1024, 801, 534, "truncate") == [0, 534]
    assert window_starts(2048, 801, 534, "truncate") == [0, 534, 1068, 1602]
    assert window_starts(1024, 798, 532, "shift") == [0, 226]
    assert window_starts(2048, 798, 532, "shift") == [0, 532, 1064, 1250]
    assert window_starts(300, 801, 534, "shift") == [0] == window_starts(300, 801, 534, "truncate")


@pytest.mark.parametrize("rule", ["truncate", "shift"])
@pytest.mark.parametrize("batch", [1, 3])
def test_sliding_window_matches_a_float64_reference(rule, batch):
    torch.manual_seed(1)
    model = RandomLogits()
    img = torch.randn(1, 3, 37, 53)
    crop, stride = 16, int(16 * 2 / 3)
    ours = sliding_window(model, img, C, crop, stride, rule, window_batch=batch)
    ref = reference_sliding(RandomLogits(), img, crop, stride, shift=rule == "shift")
    assert ours.dtype == torch.float32
    assert torch.allclose(ours.double(), ref, atol=1e-5)
    top2 = ref.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-4  # argmax is only comparable where the reference has no near-tie
    assert torch.equal(ours.argmax(1)[clear], ref.argmax(1)[clear]) and clear.float().mean() > 0.99
    covered = ref.sum(1)  # each pixel counts once per covering window
    assert covered.min() >= 1 - 1e-9


def test_v1_and_v2_windows_differ_at_the_border():
    model, img = RandomLogits(), torch.randn(1, 3, 37, 53)
    v1 = sliding_window(model, img, C, 16, 10, "truncate")
    v2 = sliding_window(model, img, C, 16, 10, "shift")
    assert not torch.allclose(v1, v2)


def test_sliding_window_equals_the_whole_image_when_one_window_covers_it():
    """V2 needs crop >= the image; V1 also starts a window at every multiple of the stride below the image
    size (a 24-high image with stride 21 gets a second window at row 21), so it needs stride >= the image."""
    model, img = RandomLogits(), torch.randn(1, 3, 24, 30)
    whole = model(img)
    for rule, crop in (("truncate", 48), ("shift", 30)):
        probs = sliding_window(model, img, C, crop, int(crop * 2 / 3), rule)
        assert torch.allclose(probs, whole.softmax(1), atol=1e-6)
        assert torch.equal(probs.argmax(1), whole.argmax(1))
    assert not torch.equal(sliding_window(model, img, C, 32, 21, "truncate").argmax(1), whole.argmax(1))


def loader_of(images, masks):
    return [{"img": i[None], "mask": m[None]} for i, m in zip(images, masks)]


def test_evaluate_sliding_equals_original_when_the_window_covers_the_image():
    torch.manual_seed(0)
    images = [torch.randn(3, 20, 28) for _ in range(3)]
    masks = [torch.randint(0, C, (20, 28)) for _ in range(3)]
    model = RandomLogits()
    original = evaluate(model, loader_of(images, masks), C, torch.device("cpu"))
    sliding = evaluate(model, loader_of(images, masks), C, torch.device("cpu"),
                       protocol=EvalProtocol("sliding_window", crop=28, stride=18, rule="shift", window_batch=2))
    assert sliding == original and original.miou > 0


def test_center_crop_evaluates_only_the_central_region():
    torch.manual_seed(0)
    img, mask = torch.randn(3, 10, 12), torch.randint(0, C, (10, 12))
    cropped_img, cropped_mask = center_crop(img, mask, 6)
    assert torch.equal(cropped_img, img[:, 2:8, 3:9]) and torch.equal(cropped_mask, mask[2:8, 3:9])
    model = RandomLogits()
    by_protocol = evaluate(model, loader_of([img], [mask]), C, torch.device("cpu"),
                           protocol=EvalProtocol("center_crop", crop=6))
    by_hand = evaluate(model, loader_of([img[:, 2:8, 3:9]], [mask[2:8, 3:9]]), C, torch.device("cpu"))
    assert by_protocol == by_hand


def test_resize_to_a_multiple_of_14_and_back():
    seen = []

    def model(x):
        seen.append(tuple(x.shape[-2:]))
        return RandomLogits()(x)

    img = torch.randn(1, 3, 20, 33)
    out = forward_at_multiple(model, img, 14)
    assert seen == [(14, 28)] and out.shape == (1, C, 20, 33)  # int(20/14+.5)=1, int(33/14+.5)=2
    ref_in = F.interpolate(img.double(), size=(14, 28), mode="bilinear", align_corners=True)
    ref = F.interpolate(RandomLogits().double()(ref_in), size=(20, 33), mode="bilinear", align_corners=True)
    assert torch.allclose(out.double(), ref, atol=1e-4)
    assert forward_at_multiple(model, img, 0).shape == (1, C, 20, 33) and seen[-1] == (20, 33)
    scores = predict(model, img, C, EvalProtocol("original", multiple=14))
    assert seen[-1] == (14, 28) and scores.shape == (1, C, 20, 33)


def test_protocol_resolution_from_config_and_dataset_default():
    auto = resolve_protocol(EvalConfig(), "sliding_window", 801)
    assert auto == EvalProtocol("sliding_window", 801, 534, "truncate", 0, 4)
    assert auto.describe() == "sliding_window(crop=801, stride=534, truncate)"
    v2 = resolve_protocol(EvalConfig(mode="sliding_window", crop_size=798, window_rule="shift"), "original", 518)
    assert (v2.crop, v2.stride, v2.rule) == (798, 532, "shift")
    assert resolve_protocol(EvalConfig(multiple=14), "original", 518).describe() == "original(multiple=14)"
    assert resolve_protocol(EvalConfig(mode="center_crop"), "sliding_window", 801).describe() == \
        "center_crop(crop=801)"


def test_corrmatch_schedule_center_crop_then_the_configured_protocol():
    sliding = EvalProtocol("sliding_window", 801, 534, "truncate", 0, 4)
    modes = [epoch_protocol(sliding, e, 240, 20).mode for e in range(240)]
    assert modes == ["center_crop"] * 220 + ["sliding_window"] * 20
    assert epoch_protocol(sliding, 219, 240, 20) == EvalProtocol("center_crop", 801, 534, "truncate", 0, 4)
    assert {epoch_protocol(sliding, e, 240, 0) for e in range(240)} == {sliding}
    assert describe_schedule(sliding, 240, 20) == ("center_crop(crop=801) in epochs 1-220, then "
                                                   "sliding_window(crop=801, stride=534, truncate)")
    assert describe_schedule(sliding, 10, 20) == sliding.describe()


def test_evaluate_runs_in_fp32_inside_an_autocast_region():
    """Training under train.amp runs in autocast; validation must not (the official code evaluates in fp32)."""
    model, dtypes = RandomLogits(), []
    model.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    images, masks = [torch.randn(3, 8, 8) for _ in range(2)], [torch.randint(0, C, (8, 8)) for _ in range(2)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(images[0][None]).dtype == torch.bfloat16  # autocast is on around the call
        dtypes.clear()
        evaluate(model, loader_of(images, masks), C, torch.device("cpu"))
        evaluate(model, loader_of(images, masks), C, torch.device("cpu"),
                 protocol=EvalProtocol("sliding_window", crop=4, stride=4, window_batch=2))
    assert len(dtypes) == 2 + 2 * 2 and set(dtypes) == {torch.float32}
