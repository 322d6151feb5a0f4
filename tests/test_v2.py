"""V2 methods: EMA rule, Style-B CutMix, Complementary Dropout, UniMatch V2 steps with ViT-S, EMA resume/reporting."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semiseg.checkpoint import load_weights
from semiseg.errors import ConfigError
from semiseg.hooks import Hook
from semiseg.losses import ema_ratio, flip_mix, unimatch_v2_total
from semiseg.methods.ema import ema_update_
from semiseg.models.dpt import complementary_masks
from semiseg.tracking import REPORTED_MODEL_TAG, _client, search_cells
from semiseg.runtime import build_trainer, run_dir_of

V2_VITS = ("method=unimatch_v2", "model.backbone=dinov2_small", "data.crop_size=56", "optim.name=adamw",
           "optim.lr=0.0001", "optim.lr_multi=40", "optim.weight_decay=0.01", "train.batch_size=2")


# ---------------------------------------------------------------- pure functions

def test_flip_mix_takes_the_reversed_batch_inside_the_box():
    value = torch.tensor([[[1, 1]], [[2, 2]], [[3, 3]]])  # 3 samples of 1×2
    box = torch.tensor([[[True, False]], [[False, True]], [[True, True]]])
    assert flip_mix(box, value).tolist() == [[[3, 1]], [[2, 2]], [[1, 1]]]  # odd batch: middle mixes with itself
    images = torch.arange(2 * 3 * 1 * 2, dtype=torch.float).reshape(2, 3, 1, 2)
    mixed = flip_mix(torch.tensor([[[True, False]], [[False, False]]]), images)
    assert torch.equal(mixed[0, :, 0, 0], images[1, :, 0, 0]) and torch.equal(mixed[0, :, 0, 1], images[0, :, 0, 1])
    assert torch.equal(mixed[1], images[1])


def test_unimatch_v2_total():
    assert unimatch_v2_total(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(4.0)).item() == pytest.approx(2.0)


def test_ema_ratio_warms_up_then_caps():
    assert [ema_ratio(it, 0.996) for it in (0, 1, 3)] == [0.0, 0.5, 0.75]
    assert ema_ratio(249, 0.996) == pytest.approx(0.996) and ema_ratio(10_000, 0.996) == 0.996
    assert ema_ratio(9, 0.3) == 0.3


def test_ema_update_follows_the_rule_on_parameters_and_buffers():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    ema = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    student(torch.randn(2, 3, 4, 4))  # moves the student's running stats and counter
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    ema_update_(ema, student, 0.25)
    for key, value in ema.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert value.item() == 1  # copied
        else:
            torch.testing.assert_close(value, 0.25 * before[key] + 0.75 * student.state_dict()[key])
    ema_update_(ema, student, 0.0)
    for key, value in ema.state_dict().items():
        assert torch.equal(value, student.state_dict()[key])  # α = 0 copies exactly


def test_complementary_masks_are_exactly_complementary():
    gen = torch.Generator().manual_seed(0)
    for pairs in (1, 2, 4, 5):
        mask = complementary_masks(pairs, 64, generator=gen)
        m1, m2 = mask[:pairs], mask[pairs:]
        assert mask.shape == (2 * pairs, 64) and torch.equal(m1 + m2, torch.full_like(m1, 2.0))
        plain = (m1 == 1).all(1) & (m2 == 1).all(1)
        assert int(plain.sum()) == pairs // 2  # int(B·0.5) pairs unperturbed
        dropped = m1[~plain]
        assert set(dropped.unique().tolist()) <= {0.0, 2.0} and torch.equal(m1[~plain] * m2[~plain],
                                                                                torch.zeros_like(dropped))


def test_complementary_dropout_masks_all_four_dpt_inputs_alike(make_config):
    from semiseg.models import build_model

    model = build_model(make_config(*V2_VITS), 6)
    seen = []
    model.head.register_forward_pre_hook(lambda mod, args: seen.append([t.clone() for t in args[0]]))
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        model(x)
        model(x, comp_drop=True)
    clean, dropped = seen
    masks = [(d / c)[:, 0, :] for c, d in zip(clean, dropped)]  # N×D ratio, the same for every token
    for c, d, m in zip(clean, dropped, masks):
        torch.testing.assert_close(d, c * m.unsqueeze(1))
        torch.testing.assert_close(m, masks[0])
    torch.testing.assert_close(masks[0][:2] + masks[0][2:], torch.full((2, 384), 2.0))
    assert int(((masks[0][:2] == 1).all(1)).sum()) == 1


# ---------------------------------------------------------------- steps on the demo data

class Capture(Hook):
    def __init__(self):
        self.steps = []

    def after_step(self, trainer, out):
        self.steps.append(({k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
                           {k: v.clone() for k, v in trainer.method.ema.state_dict().items()}, out))


def test_two_unimatch_v2_iterations_with_vit_s_move_the_ema_by_the_rule(make_config):
    trainer = build_trainer(make_config(*V2_VITS, "ema.decay=0.3", "train.max_iters_per_epoch=2"))
    assert type(trainer.model).__name__ == "DPT" and trainer.method.streams == ("labeled", "unlabeled")
    init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    capture = Capture()
    trainer.hooks.append(capture)
    trainer.train_epoch()
    (s0, e0, out0), (s1, e1, out1) = capture.steps
    for key in s0:
        assert torch.equal(e0[key], s0[key]), key  # it 0: α = 0, the teacher is the student
        torch.testing.assert_close(e1[key], 0.3 * e0[key] + 0.7 * s1[key])  # it 1: α = min(0.5, 0.3)
    assert not torch.equal(s0["head.output.2.weight"], init["head.output.2.weight"])  # the student trained
    assert not torch.equal(s1["backbone.blocks.0.attn.qkv.weight"], s0["backbone.blocks.0.attn.qkv.weight"])
    for out in (out0, out1):
        assert set(out.terms) == {"loss_x", "loss_s", "mask_ratio"} and torch.isfinite(out.loss)
        assert out.loss.item() == pytest.approx((out.terms["loss_x"] + out.terms["loss_s"]).item() / 2, rel=1e-5)


def test_comp_drop_needs_a_dpt_model(make_config):
    with pytest.raises(ConfigError, match="unimatch_v2.comp_drop.*backbone 'tiny'"):
        build_trainer(make_config("method=unimatch_v2"))


class StopAfterFirstEpoch(Hook):
    def after_epoch(self, trainer, result):
        raise KeyboardInterrupt("simulated preemption")


def test_v2_resume_restores_the_ema_teacher_exactly(make_config):
    opts = ("method=unimatch_v2", "unimatch_v2.comp_drop=false", "ema.decay=0.9")
    straight = build_trainer(make_config(*opts, folder="a"))
    straight.train()
    cfg = make_config(*opts, folder="b")
    first = build_trainer(cfg)
    first.hooks.append(StopAfterFirstEpoch())
    with pytest.raises(KeyboardInterrupt):
        first.train()
    resumed = build_trainer(cfg)
    resumed.train()
    for a, b in ((straight.model, resumed.model), (straight.method.ema, resumed.method.ema)):
        sa, sb = a.state_dict(), b.state_dict()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), key
    assert not torch.equal(straight.method.ema.state_dict()["classifier.weight"],
                           straight.model.state_dict()["classifier.weight"])
    assert resumed.state.extra["best"] == straight.state.extra["best"]


def test_v2_logs_student_and_ema_and_says_which_is_reported(tmp_path, make_config):
    cfg = make_config("method=fixmatch_v2")
    trainer = build_trainer(cfg)
    trainer.train()
    client = _client(cfg.runtime.tracking_uri)
    run = client.get_run(trainer.run_id)
    metrics, tags = run.data.metrics, run.data.tags
    assert tags[REPORTED_MODEL_TAG] == "ema"
    for key in ("val/miou_student", "val/miou_ema", "val/best_miou_student", "val/best_miou_ema",
                "best_miou_student", "best_miou_ema", "best_epoch_ema", "train/loss_s", "train/mask_ratio"):
        assert key in metrics, key
    ema_history = [m.value for m in client.get_metric_history(trainer.run_id, "val/miou_ema")]
    assert [m.value for m in client.get_metric_history(trainer.run_id, "val/miou")] == ema_history
    assert metrics["best_miou"] == metrics["best_miou_ema"] == max(ema_history)
    best = load_weights(run_dir_of(cfg) / "best.pth")
    assert best.meta["reported_model"] == "ema"
    assert "derived.parameters_backbone" in run.data.params and "derived.parameters_head" in run.data.params

    cfg = make_config("method=fixmatch_v2", "eval.report_model=student", "train.epochs=1", folder="s")
    trainer = build_trainer(cfg)
    trainer.train()
    run = [r for r in search_cells(cfg.runtime.tracking_uri, "tests") if r.run_id == trainer.run_id][0]
    assert run.tags[REPORTED_MODEL_TAG] == "student" and run.metrics["best_miou"] == run.metrics["best_miou_student"]


def test_step_benchmark_runs_on_cpu():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "tests/benchmarks/bench_step.py"), "--method", "unimatch_v2",
                           "--backbone", "dinov2_small", "--crop", "28", "--batch", "2", "--steps", "1",
                           "--warmup", "1", "--device", "cpu"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["method"] == "unimatch_v2" and result["step_s_median"] > 0 and result["parameters_M"] == 24.8
