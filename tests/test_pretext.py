"""Named weights (``model.pretrained: demo_pretext``): made once by the run assembly, cached at an absolute
location, the same bit for bit whatever the caller's thread count or working folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from semiseg.checkpoint import load_weights
from semiseg.errors import ConfigError
from semiseg.models.registry import DEMO_PRETEXT
from semiseg.runtime import build_trainer, ensure_named_weights, file_digest, resolve_weights


@pytest.fixture
def short_recipe(monkeypatch, tmp_path):
    """The pretext recipe cut to a few iterations, cached under ``tmp_path/cache``."""
    monkeypatch.setitem(DEMO_PRETEXT.run, "train", {"epochs": 1, "batch_size": 8, "max_iters_per_epoch": 3})
    monkeypatch.setenv("SEMISEG_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_named_weights_are_made_once_then_cached(short_recipe, make_config, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    path = ensure_named_weights("demo_pretext")
    assert path == short_recipe / "weights" / DEMO_PRETEXT.file_name and path.is_file()
    assert "making the named weights 'demo_pretext'" in capsys.readouterr().out
    assert (short_recipe / "data" / "demo_pretext" / "meta.json").is_file()  # its data lives in the cache too
    assert not (tmp_path / "data").exists()

    stamp = path.stat().st_mtime_ns
    assert ensure_named_weights("demo_pretext") == path and path.stat().st_mtime_ns == stamp
    assert "making" not in capsys.readouterr().out

    saved = load_weights(path)
    assert saved.meta["version"] == DEMO_PRETEXT.version and 0 <= saved.meta["val_miou"] <= 100
    cfg = make_config("model.pretrained=demo_pretext")
    trainer = build_trainer(cfg)
    for name, value in trainer.model.backbone.state_dict().items():
        assert torch.equal(value, saved.state_dict[name]), name
    from semiseg.tracking import _client

    params = _client(cfg.runtime.tracking_uri).get_run(trainer.run_id).data.params
    assert params["derived.pretrained_file"] == str(path)
    assert params["derived.pretrained_sha256"] == file_digest(path)


def test_named_weights_do_not_depend_on_threads_or_folder(monkeypatch, tmp_path):
    monkeypatch.setitem(DEMO_PRETEXT.run, "train", {"epochs": 1, "batch_size": 8, "max_iters_per_epoch": 3})
    made, before = [], torch.get_num_threads()
    try:
        for threads, folder in ((1, "a"), (2, "b")):
            (tmp_path / folder).mkdir()
            monkeypatch.chdir(tmp_path / folder)
            monkeypatch.setenv("SEMISEG_CACHE", str(tmp_path / folder / "cache"))
            torch.set_num_threads(threads)
            made.append(ensure_named_weights("demo_pretext"))
            assert torch.get_num_threads() == threads  # the caller's setting is given back
    finally:
        torch.set_num_threads(before)
    a, b = (load_weights(p).state_dict for p in made)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_weights_name_is_a_clear_error(make_config):
    with pytest.raises(ConfigError, match="does not exist .*named weights: demo_pretext"):
        resolve_weights(make_config("model.pretrained=demo_pretex"))


def test_cli_help_names_the_cache(tmp_path):
    env = {**os.environ, "SEMISEG_CACHE": str(tmp_path / "c")}
    done = subprocess.run([sys.executable, "-m", "semiseg.pretext", "--help"], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0 and str(tmp_path / "c" / "weights" / DEMO_PRETEXT.file_name) in done.stdout
    bad = subprocess.run([sys.executable, "-m", "semiseg.pretext", "--threads", "2"], capture_output=True, text=True,
                         env=env)
    assert bad.returncode == 2 and "unrecognized arguments: --threads" in bad.stderr
