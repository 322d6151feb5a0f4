"""PrevMatch snapshots and CorrMatch's correlation head and threshold: unit behaviour and exact resume on demo data."""

from types import SimpleNamespace

import pytest
import torch

from semiseg.checkpoint import load_training
from semiseg.config import config_from_dict
from semiseg.hooks import Hook
from semiseg.methods.prevmatch import PrevGuidance, SnapshotStore, base_only_epochs, snapshot_capacity
from semiseg.models import build_model
from semiseg.runtime import build_trainer, run_dir_of


def tiny_model(corr=False, classes=6):
    cfg = config_from_dict({"model": {"backbone": "tiny", "output_stride": 8, "aspp_dilations": [1, 2, 3]}})
    return build_model(cfg, classes, corr=corr)


def test_snapshot_store_is_fifo_with_capacity():
    model = tiny_model()
    store = SnapshotStore(model, capacity=2)
    for value in (1.0, 2.0, 3.0):
        with torch.no_grad():
            model.classifier.bias.fill_(value)
        store.add()
    assert [s.classifier.bias[0].item() for s in store.snapshots] == [2.0, 3.0]
    assert all(not s.training and not any(p.requires_grad for p in s.parameters()) for s in store.snapshots)
    # the snapshots are copies: changing the student leaves them alone
    with torch.no_grad():
        model.classifier.bias.fill_(9.0)
    assert store.snapshots[-1].classifier.bias[0].item() == 3.0


def test_ensemble_is_a_convex_combination_of_snapshot_logits():
    model = tiny_model()
    store = SnapshotStore(model, capacity=8)
    x = torch.randn(2, 3, 24, 24)
    store.add()
    single = store.snapshots[0](x)
    torch.manual_seed(0)
    assert torch.allclose(store.ensemble(x, 3, True), single, atol=1e-6)  # one snapshot: weight 1
    for _ in range(2):
        store.add()  # three identical snapshots: any Dirichlet weights sum to 1
    for seed in range(3):
        torch.manual_seed(seed)
        assert torch.allclose(store.ensemble(x, 3, True), single, atol=1e-5)
    with torch.no_grad():  # now distinct snapshots: logits = bias·ω summed; ω ∈ simplex
        for j, snap in enumerate(store.snapshots):
            snap.classifier.weight.zero_()
            snap.classifier.bias.fill_(float(10 ** j))
    torch.manual_seed(1)
    value = store.ensemble(x, 3, False)[0, 0, 0, 0].item()  # k = K = 3: all three snapshots
    torch.manual_seed(1)  # the same draws by hand: the order of the snapshots, then the Dirichlet weights
    order = torch.randperm(3).tolist()
    omega = torch.distributions.Dirichlet(torch.ones(3)).sample().tolist()
    assert value == pytest.approx(sum(w * 10 ** j for w, j in zip(omega, order)), rel=1e-5)
    assert sum(omega) == pytest.approx(1.0) and min(omega) > 0


def test_snapshot_store_state_roundtrip():
    model = tiny_model()
    store = SnapshotStore(model, capacity=3)
    store.add()
    with torch.no_grad():
        model.classifier.bias.fill_(5.0)
    store.add()
    other = SnapshotStore(tiny_model(), capacity=3)
    other.load_state_dict(store.state_dict())
    assert len(other) == 2 and other.snapshots[1].classifier.bias[0].item() == 5.0
    assert other.snapshots[0].classifier.bias[0].item() != 5.0


def test_capacity_and_base_only_epoch_per_dataset():
    assert snapshot_capacity(0, "pascal") == snapshot_capacity(0, "cityscapes") == 8
    assert snapshot_capacity(0, "coco") == snapshot_capacity(0, "ade20k") == 5
    assert snapshot_capacity(3, "coco") == 3
    assert base_only_epochs(-1, "ade20k") == 5 and base_only_epochs(-1, "pascal") == 0
    assert base_only_epochs(2, "coco") == 2


@pytest.mark.parametrize("prevmatch, mious, outcomes", [
    # best_val: after epochs 0..3 (completed = 1..4) with is_best = T, F, T, T; epoch 4 is the last: no snapshot
    ({}, (5, 4, 6, 7), [1, 1, 2, 2]),
    ({}, (0, 0, 6, 7), [0, 0, 1, 1]),  # a first "best" of 0.0 is no improvement
    ({"base_only_epoch": 3}, (5, 4, 6, 7), [0, 0, 1, 1]),
    ({"snapshot_on": "interval", "snapshot_interval": 2}, (5, 4, 6, 7), [0, 1, 1, 1]),
])
def test_when_snapshots_are_taken(prevmatch, mious, outcomes):
    cfg = config_from_dict({"model": {"backbone": "tiny"}, "train": {"epochs": 4}, "prevmatch": prevmatch})
    guide = PrevGuidance(cfg, tiny_model())
    counts = []
    for completed, best, miou in zip((1, 2, 3, 4), (True, False, True, True), mious):
        guide.end_epoch(SimpleNamespace(state=SimpleNamespace(epoch=completed, last_miou=miou)),
                        SimpleNamespace(is_best=best))
        counts.append(len(guide.store))
    assert counts == outcomes


def test_correlation_head_propagates_detached_logits():
    model = tiny_model(corr=True).train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # zero affinity logits: A is uniform, so corr_out is the spatial mean of z_d
        model.corr.conv1.weight.zero_(), model.corr.conv1.bias.zero_()
    out = model(x, need_fp=True, corr=True, num_regions=5)
    assert out["out"].shape == out["out_fp"].shape == out["corr_out"].shape == (2, 6, 32, 32)
    assert out["corr_map"].shape == (2, 5, 32, 32) and out["corr_map"].dtype == torch.bool
    z = torch.nn.functional.interpolate(out["out"], size=(4, 4), mode="bilinear", align_corners=True)
    expected = z.mean((2, 3), keepdim=True).expand_as(out["corr_out"])
    assert torch.allclose(out["corr_out"], expected, atol=1e-5)
    out["corr_out"].sum().backward()  # no gradient reaches the segmentation head through z
    assert model.classifier.weight.grad is None and model.corr.conv2.weight.grad is not None


def test_region_maps_follow_the_affinity():
    model = tiny_model(corr=True).train()
    out = model(torch.randn(2, 3, 32, 32), corr=True, num_regions=16)
    regions = out["corr_map"]
    assert regions.any(dim=(2, 3)).all()  # each region has its argmax pixel(s) and is not everything
    assert not regions.all(dim=(2, 3)).any()
    assert tiny_model().corr is None
    with pytest.raises(RuntimeError, match="corr=True"):
        tiny_model()(torch.randn(2, 3, 32, 32), corr=True)


class StopAfterFirstEpoch(Hook):
    def after_epoch(self, trainer, result):
        raise KeyboardInterrupt("simulated preemption")


RESUME_CASES = {
    # a permissive τ_prev so L_prev is non-zero on an untrained model
    "prevmatch": ["method=prevmatch", "prevmatch.conf_thresh=0.0"],
    # a low τ_g so the masks, propagation and KL terms are active from the first step
    "corrmatch": ["method=corrmatch", "corrmatch.thresh_init=0.2", "corrmatch.num_regions=8"],
}


@pytest.mark.parametrize("method", list(RESUME_CASES))
def test_resume_keeps_method_state_and_matches_an_uninterrupted_run(make_config, method):
    straight = build_trainer(make_config(*RESUME_CASES[method], folder="a"))
    straight.train()

    cfg = make_config(*RESUME_CASES[method], folder="b")
    first = build_trainer(cfg)
    first.hooks.append(StopAfterFirstEpoch())
    with pytest.raises(KeyboardInterrupt):
        first.train()
    saved = load_training(run_dir_of(cfg) / "last.pth")["method"]
    resumed = build_trainer(cfg)
    resumed.train()

    if method == "prevmatch":
        assert len(saved["snapshots"]) == 1  # taken after epoch 0 (a new best), used in epoch 1
        assert len(resumed.method.prev.store) == len(straight.method.prev.store) == 1
        assert resumed.last_result.terms["loss_prev"] > 0 and resumed.last_result.terms["lambda_prev"] == 1.0
        for a, b in zip(straight.method.prev.store.state_dict(), resumed.method.prev.store.state_dict()):
            assert all(torch.equal(a[k], b[k]) for k in a)
    else:
        assert saved["thresh"] != 0.2  # updated every iteration of epoch 0
        assert resumed.method.tau == straight.method.tau
        assert resumed.last_result.terms["loss_s"] > 0 and resumed.last_result.terms["loss_kl"] > 0
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
