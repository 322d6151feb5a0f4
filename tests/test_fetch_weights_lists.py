"""Published encoder weights by name and the official split lists, fetched through a loopback mirror."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SHARED, require_shared
from tiny_sources import Mirror

from semiseg import splits, weights
from semiseg.cli import run_cli
from semiseg.config import config_from_dict
from semiseg.errors import ConfigError
from semiseg.models.published import ensure_published, weights_path
from semiseg.runtime import resolve_weights
from semiseg.sources import split_sources

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMISEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SEMISEG_CHECKSUMS", raising=False)
    with Mirror(tmp_path / "mirror") as server:
        monkeypatch.setenv("SEMISEG_MIRROR", server.url)
        yield server


def _weights_bytes(tmp_path: Path) -> bytes:
    torch.save({"conv1.weight": torch.arange(12.0).reshape(1, 3, 2, 2), "fc.bias": torch.zeros(2)},
               tmp_path / "w.pth")
    return (tmp_path / "w.pth").read_bytes()


def test_named_weights_fetched_once_under_concurrent_runs_pinned_and_tamper_refused(tmp_path, mirror):
    data = _weights_bytes(tmp_path)
    mirror.put("weights/resnet101.pth", data)
    code = "from semiseg.models.published import ensure_published; print(ensure_published('resnet101'))"
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    path = weights_path("resnet101")
    assert all(out.strip().endswith(str(path)) for out, _ in outs)
    assert len(mirror.gets("weights/resnet101.pth")) == 1 and path.read_bytes() == data
    sha = hashlib.sha256(data).hexdigest()
    assert sum("trusting this first copy" in out for out, _ in outs) == 1  # trust on first use, printed
    assert f"{sha}  weights/resnet101.pth" in (tmp_path / "cache" / "pins.sha256").read_text()
    # the run resolves the name to the cached file and prints its SHA-256 (logged as derived.pretrained_sha256)
    cfg = config_from_dict({"model": {"backbone": "resnet101", "pretrained": "resnet101"}})
    assert resolve_weights(cfg) == path
    # a modified file is refused against its pin, with a clear error (exit 2 from the command line)
    path.write_bytes(data + b"\0")
    with pytest.raises(ConfigError, match=r"resnet101.*sha256 [0-9a-f]{64} does not match " + sha + ".*pinned"):
        ensure_published("resnet101")
    assert run_cli(weights.main, ["fetch", "resnet101"]) == 2


def test_registry_checksum_and_a_users_copy(tmp_path, mirror, monkeypatch, capsys):
    data = _weights_bytes(tmp_path)
    mirror.put("weights/dinov2_vitb14_pretrain.pth", data)
    registry = tmp_path / "sums.sha256"
    registry.write_text(f"{'1' * 64}  weights/dinov2_vitb14_pretrain.pth\n")
    monkeypatch.setenv("SEMISEG_CHECKSUMS", str(registry))
    with pytest.raises(ConfigError, match="does not match its checksum"):
        ensure_published("dinov2_base")
    assert not weights_path("dinov2_base").exists()
    registry.write_text(f"{hashlib.sha256(data).hexdigest()}  weights/dinov2_vitb14_pretrain.pth\n")
    (tmp_path / "mine.pth").write_bytes(data[:-1])
    assert run_cli(weights.main, ["fetch", "dinov2_base", "--from", str(tmp_path / "mine.pth")]) == 2
    assert "mine.pth (given for dinov2_base)" in capsys.readouterr().err and not weights_path("dinov2_base").exists()
    (tmp_path / "mine.pth").write_bytes(data)
    assert weights.main(["fetch", "dinov2_base", "--from", str(tmp_path / "mine.pth")]) == 0
    assert weights_path("dinov2_base").read_bytes() == data
    assert len(mirror.gets("weights/dinov2_vitb14_pretrain.pth")) == 1  # only the refused download


def test_a_web_page_or_a_file_off_its_published_prefix_is_never_pinned(tmp_path, mirror):
    mirror.put("weights/xception.pth", b"\n  <!DOCTYPE html><html><body>Google Drive - quota exceeded</body></html>")
    with pytest.raises(ConfigError, match="returned a web page, not the file.*nothing was kept"):
        ensure_published("xception")
    assert not weights_path("xception").exists() and not (tmp_path / "cache" / "pins.sha256").exists()
    # torchvision's files carry the start of their SHA-256 in the name: a file without it is refused
    mirror.put("weights/resnet50-0676ba61.pth", b"not torchvision's resnet50")
    with pytest.raises(ConfigError, match="does not start with 0676ba61, the prefix its publisher puts in the file"):
        ensure_published("tv_resnet50")
    assert not (tmp_path / "cache" / "pins.sha256").exists()


def test_official_lists_match_their_recorded_sha256_and_are_imported(tmp_path, mirror, capsys):
    """The recorded checksums are those of the official lists (served from the reference data beside the clone,
    the published copies)."""
    shared = require_shared(SHARED / "splits" / "pascal")
    for rel, source in split_sources("pascal"):
        mirror.put(source.key, (shared / rel).read_bytes())
    root = tmp_path / "voc"
    assert splits.main(["fetch", "pascal", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{root / 'splits' / '92' / 'labeled.txt'}: 92 entries  (official size)" in out
    assert f"{root / 'splits' / 'train_aug.txt'}: 10582 entries  (official size)" in out
    assert (root / "splits" / "val.txt").read_bytes() == (shared / "val.txt").read_bytes()
    # a list that differs from the official one is refused, and nothing is imported
    _, first = split_sources("pascal")[0]
    mirror.put(first.key, (shared / split_sources("pascal")[0][0]).read_bytes() + b"\n")
    (tmp_path / "cache" / "splits").rename(tmp_path / "old")
    assert run_cli(splits.main, ["fetch", "pascal", "--root", str(tmp_path / "other")]) == 2
    assert "does not match its checksum" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_paper_grids_name_published_weights_of_their_own_encoder():
    from semiseg.experiments.registry import expand, list_experiments, load_experiment
    from semiseg.models import BACKBONES
    from semiseg.sources import PUBLISHED_WEIGHTS

    assert all(w.backbone in BACKBONES.names() for w in PUBLISHED_WEIGHTS.values())
    for name in list_experiments():
        for cell in expand(load_experiment(name)):
            model = cell.config.model
            if name.startswith("demo"):
                continue
            assert model.pretrained in PUBLISHED_WEIGHTS, (name, cell.axes)
            assert PUBLISHED_WEIGHTS[model.pretrained].backbone == model.backbone, (name, cell.axes)
