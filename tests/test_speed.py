"""The speed options (issue 16): each does what it says when on, and changes nothing that matters when off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semiseg import speed
from semiseg.data.demo_ood import ensure_demo_ood
from semiseg.distributed import unwrap
from semiseg.errors import StopRequested, TrainingDiverged
from semiseg.evaluate import evaluate
from semiseg.hooks import Hook, training_state
from semiseg.methods import METHODS, Method, StepOutput
from semiseg.protocol import evaluates_after
from semiseg.runtime import build_trainer

#: the smallest run of every registered method (the options of tests/test_v2.py and tests/test_prev_corr.py)
METHOD_OPTIONS = {
    "supervised": (), "fixmatch": (), "unimatch": (),
    "prevmatch": ("prevmatch.conf_thresh=0.0",),
    "corrmatch": ("corrmatch.thresh_init=0.2", "corrmatch.num_regions=8"),
    "semiovs_unimatch": (), "semiovs_prevmatch": ("prevmatch.conf_thresh=0.0",),
    "unimatch_v2": ("model.backbone=dinov2_small", "data.crop_size=56", "optim.name=adamw", "train.batch_size=2"),
    "fixmatch_v2": ("model.backbone=dinov2_small", "data.crop_size=56", "optim.name=adamw", "train.batch_size=2"),
}


@METHODS.register("nan_after_first_for_speed")
class NaNAfterFirst(Method):
    """A NaN loss from the second call on (registered for this test module only)."""

    calls = 0

    def step(self, batch):
        out = self.model(batch["labeled"]["img"]).mean()
        bad = out * float("nan") if self.calls else out
        self.calls += 1
        return StepOutput(bad, {"loss_x": bad.detach()})


def untracked(make_config, *overrides: str, folder: str = ""):
    return build_trainer(make_config(*overrides, folder=folder), tracked=False)


def first_batch(trainer) -> dict:
    trainer.data.set_epoch(0)
    return {name: next(iter(trainer.data.loaders[name])) for name in trainer.method.streams}


def seeded_step(trainer, batch):
    torch.manual_seed(1)  # the methods' own draws (FP dropout, region sampling) are the same
    return trainer.run_step(batch)


def conv_weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.shape[-1] > 1]


def test_method_options_cover_every_registered_method():
    assert set(METHODS.names()) - {"nan_after_first_for_speed", "nan_for_tests"} == set(METHOD_OPTIONS)


def test_channels_last_model_and_inputs_same_loss(make_config):
    plain = untracked(make_config, folder="a")
    nhwc = untracked(make_config, "speed.channels_last=true", folder="b")
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(nhwc.model))
    assert not any(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(plain.model))
    seen = []
    nhwc.model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    batch = first_batch(plain)
    a, b = seeded_step(plain, batch), seeded_step(nhwc, batch)
    assert seen and all(x.is_contiguous(memory_format=torch.channels_last) for x in seen)
    assert float(b.loss.detach()) == pytest.approx(float(a.loss.detach()), abs=1e-5)
    seen.clear()  # evaluation gets its images channels-last too, with the same mIoU
    results = [evaluate(t.model, t.data.val_loader, t.data.num_classes, t.device, t.data.protocol,
                        channels_last=t.cfg.speed.channels_last) for t in (plain, nhwc)]
    assert seen and all(x.is_contiguous(memory_format=torch.channels_last) for x in seen)
    assert results[1].miou == pytest.approx(results[0].miou, abs=0.05)


def test_compile_wraps_the_model_and_checkpoints_keep_plain_keys(make_config, monkeypatch):
    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")  # inductor's C++ build takes minutes on 2 cores
    plain = untracked(make_config, "method=corrmatch", *METHOD_OPTIONS["corrmatch"], folder="a")
    compiled = untracked(make_config, "method=corrmatch", *METHOD_OPTIONS["corrmatch"], "speed.compile=true",
                         folder="b")
    assert isinstance(compiled.model, torch._dynamo.eval_frame.OptimizedModule)
    assert type(unwrap(compiled.model)) is type(plain.model)
    batch = first_batch(plain)
    a, b = seeded_step(plain, batch), seeded_step(compiled, batch)  # CorrMatch's need_fp/corr passes
    assert float(b.loss.detach()) == pytest.approx(float(a.loss.detach()), abs=1e-5)
    keys = training_state(compiled)["model"].keys()
    assert keys == training_state(plain)["model"].keys() and not any("_orig_mod" in k for k in keys)


@pytest.mark.parametrize("impl, atol", [("foreach", 1e-6), ("fused", 1e-5)])  # fused rounds differently (~2e-6)
def test_optimizer_impl_same_update(make_config, impl, atol):
    plain = untracked(make_config, "optim.name=adamw", folder="a")
    other = untracked(make_config, "optim.name=adamw", f"speed.optimizer_impl={impl}", folder="b")
    assert other.optimizer.defaults[impl] is True and not plain.optimizer.defaults[impl]
    batch = first_batch(plain)
    for trainer in (plain, other):
        for _ in range(2):
            seeded_step(trainer, batch)
            trainer.state.iteration += 1
    for (name, a), b in zip(plain.model.named_parameters(), other.model.parameters()):
        torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=name)


@pytest.mark.parametrize("method", sorted(METHOD_OPTIONS))
def test_bf16_autocast_on_cpu_for_every_method(make_config, method, demo_root):
    ood = (f"semiovs.ood_root={ensure_demo_ood(demo_root.parent / 'demo_ood')}",) if "semiovs" in method else ()
    small = ("data.crop_size=28",) if method.endswith("_v2") else ()  # tiny shapes: bf16 may be emulated (AVX2)
    trainer = untracked(make_config, f"method={method}", *METHOD_OPTIONS[method], *ood, *small, "train.amp=bf16")
    assert trainer.amp_dtype is torch.bfloat16
    dtypes = []
    conv = next(m for m in trainer.model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    before = [p.detach().clone() for p in trainer.model.parameters()]
    out = seeded_step(trainer, first_batch(trainer))
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert torch.isfinite(out.loss)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # fp32 master weights, updated
    assert any(not torch.equal(p, q) for p, q in zip(trainer.model.parameters(), before))


def test_fp16_on_cpu_stays_fp32(make_config, capsys):
    trainer = untracked(make_config, "train.amp=fp16")
    assert trainer.amp_dtype is None and not trainer.scaler.is_enabled()
    assert trainer.amp == "off" and "precision: fp32 (train.amp=fp16" in capsys.readouterr().out


def count_syncs(monkeypatch) -> list[int]:
    """Counts reads of a tensor's value on the host (bool, float, item)."""
    calls = [0]
    for name in ("__bool__", "__float__", "item"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original):
            calls[0] += 1
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def test_sync_every_reads_less_and_logs_the_same_loss(make_config, monkeypatch):
    budget = ("method=supervised", "train.epochs=1", "train.max_iters_per_epoch=8")
    results = {}
    for n in (1, 4):
        trainer = untracked(make_config, *budget, f"speed.sync_every={n}", folder=f"n{n}")
        with monkeypatch.context() as patch:
            calls = count_syncs(patch)
            terms = trainer.train_epoch().terms
        results[n] = calls[0], terms
        assert trainer.state.epoch_sums == {}
    (syncs_1, terms_1), (syncs_4, terms_4) = results[1], results[4]
    assert syncs_4 < syncs_1 / 2, (syncs_4, syncs_1)
    assert terms_4 == terms_1  # exactly: the device sums are float64 as Python's


def test_sync_every_still_catches_a_nan_within_n_iterations(make_config):
    trainer = untracked(make_config, "method=nan_after_first_for_speed", "train.max_iters_per_epoch=8",
                        "speed.sync_every=4")
    with pytest.raises(TrainingDiverged, match=r"epoch 0 in iterations 0-3 \(iteration 3: loss=nan, loss_x=nan\)"):
        trainer.train()
    assert trainer.state.iteration == 3  # raised in the step of iteration 3, the 4th


def test_mid_epoch_checkpoint_saves_float_sums(make_config):
    trainer = build_trainer(make_config("method=supervised", "train.epochs=1", "train.max_iters_per_epoch=4",
                                        "runtime.checkpoint_every_iters=2", "speed.sync_every=3"))
    saved = []
    trainer.hooks.append(type("Peek", (Hook,), {"priority": 55, "after_step": lambda self, t, out: saved.append(
        dict(t.state.epoch_sums)) if t.state.epoch_iter == 2 else None})())
    trainer.train()
    assert saved and all(type(v) is float for v in saved[0].values())


def test_stop_check_every_agrees_less_often_and_still_stops(make_config):
    trainer = untracked(make_config, "method=supervised", "train.epochs=1", "train.max_iters_per_epoch=6",
                        "speed.stop_check_every=3")
    asked = []
    trainer.agree = lambda flag: asked.append(trainer.state.iteration) or flag
    trainer.train()
    assert asked == [0, 3, 6]  # before iterations 0 and 3, after the epoch

    stopping = untracked(make_config, "method=supervised", "train.epochs=1", "train.max_iters_per_epoch=6",
                         "speed.stop_check_every=3", folder="s")

    class StopAfterFirst(Hook):
        def after_step(self, trainer, out):
            if trainer.state.iteration == 1:
                trainer.request_stop(15)

    stopping.hooks.append(StopAfterFirst())
    with pytest.raises(StopRequested):
        stopping.train()
    assert stopping.state.iteration == 3  # honoured at the next check, within 3 steps


def test_evaluates_after_every_nth_and_the_last_epoch():
    assert [e for e in range(1, 8) if evaluates_after(e, 7, 3)] == [3, 6, 7]
    assert [e for e in range(1, 4) if evaluates_after(e, 3, 1)] == [1, 2, 3]


def test_eval_every_n_epochs(make_config):
    from semiseg.tracking import _client

    cfg = make_config("method=prevmatch", "prevmatch.conf_thresh=0.0", "prevmatch.base_only_epoch=0",
                      "train.epochs=3", "eval.every_n_epochs=2")
    trainer = build_trainer(cfg)
    seen = []

    class Watch(Hook):
        priority = 35  # after Evaluate and the method's epoch end, before logging

        def after_epoch(self, trainer, result):
            seen.append((trainer.state.epoch, bool(result.evals), len(trainer.method.prev.store), result.metrics))

    trainer.hooks.append(Watch())
    state = trainer.train()
    assert [(e, evaluated) for e, evaluated, _, _ in seen] == [(1, False), (2, True), (3, True)]
    assert seen[0][2] == 0 and "val/miou" not in seen[0][3] and "train/loss" in seen[0][3]
    client = _client(cfg.runtime.tracking_uri)
    mious = {m.step: m.value for m in client.get_metric_history(trainer.run_id, "val/miou")}
    assert sorted(mious) == [1, 2]
    assert seen[1][2] == (1 if mious[1] > 0 else 0)  # a snapshot after an evaluated epoch with a new best
    assert [m.step for m in client.get_metric_history(trainer.run_id, "train/loss")] == [0, 1, 2]
    assert state.best_miou == max(mious.values()) and state.best_epoch in (1, 2)
    assert client.get_run(trainer.run_id).data.metrics["best_miou"] == state.best_miou


def test_eval_every_n_epochs_after_a_resume(make_config):
    from semiseg.tracking import _client

    cfg = make_config("method=supervised", "train.epochs=4", "eval.every_n_epochs=3")
    first = build_trainer(cfg)

    class KillAfterFirstEpoch(Hook):
        def after_epoch(self, trainer, result):
            raise KeyboardInterrupt("simulated preemption")

    first.hooks.append(KillAfterFirstEpoch())
    with pytest.raises(KeyboardInterrupt):
        first.train()
    resumed = build_trainer(cfg)
    evaluated = []
    resumed.hooks.append(type("Watch", (Hook,), {"after_epoch": lambda self, t, r: evaluated.append(
        (t.state.epoch, bool(r.evals)))})())
    resumed.train()
    assert resumed.run_id == first.run_id and evaluated == [(2, False), (3, True), (4, True)]
    client = _client(cfg.runtime.tracking_uri)
    assert [m.step for m in client.get_metric_history(resumed.run_id, "train/loss")] == [0, 1, 2, 3]  # none twice
    assert [m.step for m in client.get_metric_history(resumed.run_id, "val/miou")] == [2, 3]
