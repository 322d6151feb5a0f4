"""Mid-epoch checkpoints: a graceful stop (the SLURM signal) or a crash after a periodic checkpoint resumes
exactly, giving the same weights as an uninterrupted run, in the same MLflow run."""

import signal

import pytest
import torch

from semiseg.checkpoint import load_training
from semiseg.errors import StopRequested
from semiseg.hooks import Checkpointing, Hook
from semiseg.tracking import search_cells
from semiseg.runtime import build_trainer

# 2 epochs x 4 iterations
BUDGET = ("train.epochs=2", "train.max_iters_per_epoch=4")


class At(Hook):
    """Call ``action(trainer)`` once, after global iteration ``iteration``."""

    def __init__(self, iteration, action):
        self.iteration, self.action = iteration, action

    def after_step(self, trainer, out):
        if trainer.state.iteration == self.iteration:
            self.action(trainer)


class Crash(RuntimeError):
    pass


def crash(trainer):
    raise Crash("node lost")


def last_path(trainer):
    return next(h for h in trainer.hooks if isinstance(h, Checkpointing)).last


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture
def straight(make_config):
    trainer = build_trainer(make_config(*BUDGET, folder="straight"))
    trainer.train()
    return trainer


def test_graceful_stop_mid_epoch_resumes_exactly(make_config, straight):
    cfg = make_config(*BUDGET, folder="stopped")
    first = build_trainer(cfg)
    first.hooks.append(At(6, lambda t: t.request_stop(signal.SIGUSR2)))  # iteration 2 of epoch 2
    with pytest.raises(StopRequested):
        first.train()
    ckpt = load_training(last_path(first))
    assert ckpt["state"]["epoch"] == 1 and ckpt["state"]["epoch_iter"] == 2 and ckpt["state"]["iteration"] == 6
    assert set(ckpt["state"]["epoch_sums"]) >= {"loss"}
    (killed,) = search_cells(cfg.runtime.tracking_uri, "tests")
    assert killed.status == "KILLED"

    resumed = build_trainer(cfg)
    resumed.train()
    assert resumed.run_id == first.run_id and resumed.state.iteration == 8 and resumed.state.epoch == 2
    assert_same(weights(straight), weights(resumed))
    assert resumed.last_result.terms == pytest.approx(straight.last_result.terms)  # epoch averages survive the stop


def test_periodic_checkpoint_bounds_the_loss_of_a_crash(make_config, straight):
    cfg = make_config(*BUDGET, "runtime.checkpoint_every_iters=2", folder="crashed")
    first = build_trainer(cfg)
    first.hooks.append(At(7, crash))  # dies one iteration after the checkpoint at iteration 6
    with pytest.raises(Crash):
        first.train()
    assert load_training(last_path(first))["state"]["iteration"] == 6

    resumed = build_trainer(cfg)
    resumed.train()
    assert resumed.state.iteration == 8
    assert_same(weights(straight), weights(resumed))
