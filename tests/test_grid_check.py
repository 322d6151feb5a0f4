"""run_grid checks a paper grid's data, split lists and weights before it launches anything."""

from __future__ import annotations

import pytest
from tiny_sources import Mirror, pascal_archives, pascal_lists, serve

from semiseg.launch import run_grid
from semiseg import splits, weights
from semiseg.data import prepare


@pytest.fixture
def grid(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMISEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "pascal"
    args = ["--exp", "pascal_all", "--set", f"data.root={root}", "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}", "--output-dir", str(tmp_path / "runs")]
    return root, args


def test_empty_disk_lists_what_is_missing_then_the_prepared_stand_in_passes(tmp_path, grid, monkeypatch, capsys):
    root, args = grid
    assert run_grid.main([*args, "--check"]) == 2
    err = capsys.readouterr().err
    assert f"missing: pascal: dataset root {root} does not exist -> semiseg data prepare pascal " \
           f"--root {root}" in err
    assert f"missing: weights 'resnet101': {tmp_path / 'cache' / 'weights' / 'resnet101.pth'} is missing -> " \
           f"semiseg weights fetch resnet101" in err
    assert "semiseg weights fetch dinov2_base" in err  # UniMatch V2's encoder
    assert "nothing was launched" in err
    # the same check stops --dry-run and a SLURM launch before anything is written or submitted
    assert run_grid.main([*args, "--dry-run"]) == 2
    assert run_grid.main([*args, "--backend", "slurm", "--cluster", "local"]) == 2
    assert not (tmp_path / "runs").exists()

    with Mirror(tmp_path / "mirror") as mirror:
        registry = tmp_path / "checksums.sha256"
        serve(mirror, {**pascal_archives(), **pascal_lists(), "weights/resnet101.pth": b"resnet",
                       "weights/dinov2_vitb14_pretrain.pth": b"dino"}, registry)
        monkeypatch.setenv("SEMISEG_MIRROR", mirror.url)
        monkeypatch.setenv("SEMISEG_CHECKSUMS", str(registry))
        assert prepare.main(["pascal", "--root", str(root)]) == 0
        assert run_grid.main([*args, "--check"]) == 2  # the data is there, the lists not yet
        assert "semiseg splits fetch pascal --root" in capsys.readouterr().err
        assert splits.main(["fetch", "pascal", "--root", str(root)]) == 0
        assert weights.main(["fetch", "resnet101", "dinov2_base"]) == 0
    capsys.readouterr()
    assert run_grid.main([*args, "--check"]) == 0
    assert "check passed: data, split lists and weights of 30 cell(s) are in place" in capsys.readouterr().out
    assert run_grid.main([*args, "--check", "--full"]) == 0
    # a listed mask that disappears is found (every file with --full)
    (root / "SegmentationClass" / "2008_000002.png").unlink()
    assert run_grid.main([*args, "--check", "--full"]) == 2
    assert "file(s) missing under" in capsys.readouterr().err
