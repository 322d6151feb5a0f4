"""The shared trainer on real demo data: exact resume, MLflow records, NaN handling, methods run."""

import json

import pytest
import torch

from semiseg.checkpoint import load_training
from semiseg.errors import TrainingDiverged
from semiseg.hooks import Hook
from semiseg.methods import METHODS, Method, StepOutput
from semiseg.tracking import search_cells
from semiseg.runtime import build_trainer, run_dir_of


class StopAfterFirstEpoch(Hook):
    def after_epoch(self, trainer, result):
        raise KeyboardInterrupt("simulated preemption")


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("method, workers", [("unimatch", 0), ("fixmatch", 0), ("supervised", 0), ("unimatch", 1)])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(make_config, method, workers):
    straight = build_trainer(make_config(f"method={method}", f"runtime.num_workers={workers}", folder="a"))
    straight.train()

    cfg = make_config(f"method={method}", f"runtime.num_workers={workers}", folder="b")
    first = build_trainer(cfg)
    first.hooks.append(StopAfterFirstEpoch())
    with pytest.raises(KeyboardInterrupt):
        first.train()
    run_id = first.run_id
    assert [c.status for c in search_cells(cfg.runtime.tracking_uri, "tests")] == ["KILLED"]

    resumed = build_trainer(cfg)  # a fresh process would build exactly this
    resumed.train()
    assert resumed.run_id == run_id and resumed.state.epoch == 2
    a, b = weights(straight), weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    runs = search_cells(cfg.runtime.tracking_uri, "tests")
    assert len(runs) == 1 and runs[0].status == "FINISHED"


def test_run_is_recorded_in_mlflow(tmp_path, make_config):
    from semiseg.tracking import _client

    cfg = make_config("method=unimatch")
    trainer = build_trainer(cfg)
    trainer.train()
    run = _client(cfg.runtime.tracking_uri).get_run(trainer.run_id)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert run.info.status == "FINISHED"
    for key in ("semiseg.method", "semiseg.dataset", "semiseg.split", "semiseg.backbone", "semiseg.seed",
                "semiseg.hash", "semiseg.git_commit", "semiseg.n_labeled"):
        assert key in tags, key
    assert tags["semiseg.n_labeled"] == "24"
    assert params["optim.lr"] == "0.01" and params["method"] == "unimatch" and "derived.parameters" in params
    for key in ("train/loss", "train/loss_x", "train/loss_s1", "train/loss_s2", "train/loss_fp",
                "train/mask_ratio", "train/lr", "val/miou", "val/best_miou", "val/iou/background",
                "best_miou", "last_miou"):
        assert key in metrics, key
    assert tags["semiseg.reported_model"] == "student" and "val/miou_student" not in metrics  # one model only
    history = _client(cfg.runtime.tracking_uri).get_metric_history(trainer.run_id, "val/miou")
    assert [m.step for m in history] == [0, 1]
    run_dir = run_dir_of(cfg)
    per_class = json.loads((run_dir / "per_class_iou.json").read_text())
    assert set(per_class["last"]) == {"background", "disk", "rectangle", "triangle", "star", "ring"}
    ckpt = load_training(run_dir / "last.pth")
    assert ckpt["state"]["epoch"] == 2 and ckpt["mlflow_run_id"] == trainer.run_id
    assert (run_dir / "best.pth").exists()
    assert not list(run_dir.glob("*.tmp"))


def test_poly_schedule_reaches_zero(make_config):
    trainer = build_trainer(make_config("method=supervised", "optim.lr_multi=10"))
    trainer.train()
    total = trainer.total_iters
    lrs = [g["lr"] for g in trainer.optimizer.param_groups]
    expected = 0.01 * (1 - (total - 1) / total) ** 0.9
    assert lrs == pytest.approx([expected, 10 * expected])


@METHODS.register("nan_for_tests")
class NaNMethod(Method):
    """Returns a NaN loss at the second iteration (registered for this test module only)."""

    def step(self, batch):
        out = self.model(batch["labeled"]["img"]).mean()
        bad = out * float("nan") if self.calls else out
        self.calls = getattr(self, "calls", 0) + 1
        return StepOutput(bad, {"loss_x": bad.detach()})

    calls = 0


def test_nan_loss_fails_the_run_with_iteration_and_terms(make_config):
    from semiseg.tracking import _client

    cfg = make_config("method=nan_for_tests")
    trainer = build_trainer(cfg)
    with pytest.raises(TrainingDiverged, match=r"iteration 1 \(loss_x=nan\)"):
        trainer.train()
    run = _client(cfg.runtime.tracking_uri).get_run(trainer.run_id)
    assert run.info.status == "FAILED"
    assert "diverged" in run.data.tags["semiseg.error"] and "iteration 1" in run.data.tags["semiseg.error"]
