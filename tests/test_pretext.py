"""The demo encoder's pretext pretraining (semiseg.pretext) and named weights in ``model.pretrained``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semiseg import pretext
from semiseg.errors import ConfigError
from semiseg.models import build_model
from semiseg.models.registry import weights_path


@pytest.fixture
def short_recipe(monkeypatch, tmp_path):
    """The pretext recipe cut to a few iterations, run in a fresh working folder."""
    monkeypatch.setitem(pretext.PRETEXT_RUN, "train", {"epochs": 1, "batch_size": 8, "max_iters_per_epoch": 3})
    monkeypatch.chdir(tmp_path)


def test_named_weights_are_pretrained_once_then_cached(short_recipe, make_config, capsys):
    path = weights_path("demo_pretext")
    assert path == pretext.default_path() and path.is_file()
    assert "pretraining the demo encoder" in capsys.readouterr().out
    assert Path("data/demo_pretext/meta.json").is_file()  # the pretext set was generated in the working folder

    stamp = path.stat().st_mtime_ns
    assert weights_path("demo_pretext") == path and path.stat().st_mtime_ns == stamp
    assert "pretraining" not in capsys.readouterr().out

    saved = torch.load(path, weights_only=True)
    assert saved["pretext"]["version"] == pretext.PRETEXT_VERSION and 0 <= saved["pretext"]["val_miou"] <= 100
    model = build_model(make_config("model.pretrained=demo_pretext"), 6)
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, saved["state_dict"][name]), name


def test_pretraining_is_deterministic(short_recipe, tmp_path):
    first, second = tmp_path / "a.pth", tmp_path / "b.pth"
    assert pretext.pretrain(first) == pretext.pretrain(second)
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_weights_name_is_a_clear_error(make_config):
    with pytest.raises(ConfigError, match="does not exist .*named weights: demo_pretext"):
        build_model(make_config("model.pretrained=demo_pretex"), 6)


def test_cli_help_names_the_cache_and_bad_threads_exit_cleanly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "semiseg.pretext", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "data/pretrained/tiny_demo_pretext_v" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "semiseg.pretext", "--threads", "0", "--out", str(tmp_path / "w.pth")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--threads must be at least 1, got 0" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "w.pth").exists()
