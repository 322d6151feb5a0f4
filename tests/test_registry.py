"""The experiment registry: grid rules, the paper grids, LR scaling, official configs, the plan display."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from semiseg.experiments import registry
from semiseg.experiments.official import convert_official
from semiseg.experiments.registry import expand, list_experiments, load_experiment
from semiseg.config import config_from_dict, effective_lr, recipe_hash
from semiseg.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def exp_dir(tmp_path, monkeypatch):
    """A private experiments folder (the real one stays untouched) and an empty workspace; ``_paper`` is copied
    in for inheritance."""
    (tmp_path / "_paper.yaml").write_text((registry.EXPERIMENTS_DIR / "_paper.yaml").read_text())
    monkeypatch.setattr(registry, "EXPERIMENTS_DIR", tmp_path)
    monkeypatch.setenv("SEMISEG_HOME", str(tmp_path / "workspace"))
    return tmp_path


def plan_json(*args: str, tmp: Path) -> list[dict]:
    out = subprocess.run([sys.executable, str(ROOT / "launch" / "run_grid.py"), *args, "--dry-run", "--json",
                          "--no-check",
                          "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--output-dir", str(tmp / "runs")],
                         capture_output=True, text=True, cwd=tmp, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_paper_grids_plan_without_any_dataset(tmp_path):
    cells = plan_json("--exp", "pascal_all", tmp=tmp_path)
    assert len(cells) == 30 and {c["state"] for c in cells} == {"new"}
    assert {c["method"] for c in cells} == {"supervised", "fixmatch", "unimatch", "unimatch_v2", "prevmatch",
                                            "corrmatch"}
    assert {c["split"] for c in cells} == {"92", "183", "366", "732", "1464"}
    assert {c["backbone"] for c in cells if c["method"] == "unimatch_v2"} == {"dinov2_base"}
    assert {c["backbone"] for c in cells if c["method"] != "unimatch_v2"} == {"resnet101"}
    assert len(plan_json("--exp", "pascal_all", "--seeds", "3", tmp=tmp_path)) == 90
    assert not (tmp_path / "data").exists()


def test_recipes_follow_the_spec_table():
    cells = {(c.config.method, c.config.data.split): c.config for c in expand(load_experiment("pascal_all"))}
    uni, v2, corr, prev = (cells[m, "92"] for m in ("unimatch", "unimatch_v2", "corrmatch", "prevmatch"))
    assert (uni.data.crop_size, uni.train.epochs, uni.optim.name, uni.optim.lr, uni.optim.lr_multi) == \
        (321, 80, "sgd", 0.001, 10.0)
    assert (uni.train.gpus, uni.train.batch_size, uni.optim.reference_batch) == (4, 2, 8)
    assert (v2.data.crop_size, v2.optim.name, v2.optim.lr, v2.optim.lr_multi, v2.eval.multiple) == \
        (518, "adamw", 5e-6, 40.0, 14)
    assert (corr.model.output_stride, corr.model.aspp_dilations) == (8, [12, 24, 36])
    assert (prev.train.gpus, prev.train.batch_size, prev.train.amp) == (1, 8, "fp16")
    city = {c.config.method: c.config for c in expand(load_experiment("cityscapes_all"), {"split": ["1_16"]})}
    assert city["unimatch"].loss.conf_thresh == 0.0 and city["unimatch"].loss.criterion == "ohem"
    assert city["unimatch_v2"].loss.conf_thresh == 0.95 and city["unimatch_v2"].eval.window_rule == "shift"
    assert city["corrmatch"].loss.ohem_min_kept == 100000 and city["corrmatch"].eval.center_crop_until_last == 20
    assert city["unimatch"].eval.center_crop_until_last == 0


def test_linear_lr_scaling():
    cfg = config_from_dict({"optim": {"lr": 0.001, "reference_batch": 8}, "train": {"gpus": 1, "batch_size": 2}})
    assert effective_lr(cfg) == pytest.approx(0.00025)
    cfg = config_from_dict({"optim": {"lr": 0.001, "reference_batch": 8}, "train": {"gpus": 1, "batch_size": 8}})
    assert effective_lr(cfg) == 0.001
    assert effective_lr(config_from_dict({"optim": {"lr": 0.001}, "train": {"batch_size": 3}})) == 0.001


def test_plan_shows_the_scaled_lr(tmp_path):
    (cell,) = [c for c in plan_json("--exp", "pascal_all", "--methods", "unimatch", "--splits", "92",
                                    "--set", "train.gpus=1", tmp=tmp_path)]
    assert cell["lr"] == 0.001 and cell["effective_lr"] == pytest.approx(0.00025)
    text = subprocess.run([sys.executable, str(ROOT / "launch" / "run_grid.py"), "--exp", "pascal_all",
                           "--methods", "unimatch", "--splits", "92", "--set", "train.gpus=1", "--dry-run",
                           "--no-check",
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                          capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert "0.00025*" in text and "LR scaled linearly" in text


def test_rules_exclude_override_inherit_and_abstract_bases(exp_dir):
    (exp_dir / "base.yaml").write_text(
        "defaults: {data: {dataset: demo}, model: {backbone: tiny}}\n"
        "grid: {method: [supervised, unimatch], split: ['1_16', '1_4'], seed: [0, 1]}\n"
        "overrides:\n  - when: {dataset: demo, method: supervised}\n    set: {train: {batch_size: 8}}\n")
    (exp_dir / "child.yaml").write_text(
        "inherit: base\ngrid: {seed: [0]}\nexclude:\n  - {method: unimatch, split: '1_4'}\n"
        "overrides:\n  - when: {split: '1_16'}\n    set: {train: {epochs: 3}}\n")
    assert list_experiments() == ["base", "child"]  # _paper is abstract
    cells = expand(load_experiment("child"))
    assert sorted((c.axes["method"], c.axes["split"]) for c in cells) == \
        [("supervised", "1_16"), ("supervised", "1_4"), ("unimatch", "1_16")]
    by = {(c.axes["method"], c.axes["split"]): c.config for c in cells}
    assert by["supervised", "1_4"].train.batch_size == 8  # 'dataset' matched from defaults, not the grid
    assert by["unimatch", "1_16"].train.batch_size != 8 and by["unimatch", "1_16"].train.epochs == 3
    with pytest.raises(ConfigError, match="abstract base"):
        expand(load_experiment("_paper"))
    assert len({c.hash for c in expand(load_experiment("base"))}) == 8
    seeds = expand(load_experiment("base"), {"method": ["unimatch"], "split": ["1_16"]})
    assert len({recipe_hash(c.config) for c in seeds}) == 1 and len({c.hash for c in seeds}) == 2


def test_official_config_maps_to_ours_and_refuses_unknown_keys(exp_dir):
    official = {"dataset": "cityscapes", "nclass": 19, "crop_size": 801, "epochs": 240, "batch_size": 2,
                "lr": 0.005, "lr_multi": 1.0, "conf_thresh": 0.0, "backbone": "resnet101",
                "criterion": {"name": "OHEM", "kwargs": {"ignore_index": 255, "thresh": 0.7, "min_kept": 200000}},
                "model": "deeplabv3plus", "replace_stride_with_dilation": [False, True, True],
                "dilations": [12, 24, 36]}
    ours = convert_official(official, gpus=4)
    assert ours["loss"] == {"criterion": "ohem", "ohem_thresh": 0.7, "ohem_min_kept": 200000, "conf_thresh": 0.0}
    assert ours["model"]["output_stride"] == 8 and ours["optim"]["reference_batch"] == 8
    assert ours["optim"]["name"] == "sgd"
    with pytest.raises(ConfigError, match="multi_grid"):
        convert_official({**official, "multi_grid": True})
    with pytest.raises(ConfigError, match="nclass 21 does not match"):
        convert_official({**official, "nclass": 21})
    import yaml

    (exp_dir / "city.yaml").write_text(yaml.safe_dump(official))
    (exp_dir / "from_official.yaml").write_text(
        "official: {file: city.yaml, gpus: 4}\ndefaults: {train: {epochs: 2}}\n"
        "grid: {method: [unimatch], split: ['1_16']}\n")
    (cell,) = expand(load_experiment("from_official"))
    assert (cell.config.data.crop_size, cell.config.train.epochs, cell.config.model.aspp_dilations) == \
        (801, 2, [12, 24, 36])


def test_official_cli_errors_cleanly(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: pascal\nmulti_grid: true\n")
    out = subprocess.run([sys.executable, "-m", "semiseg.experiments.official", str(bad)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 2 and "multi_grid" in out.stderr and "Traceback" not in out.stderr


def test_gpus_refit_keeps_the_paper_global_batch_or_scales_the_lr(tmp_path, capsys):
    from semiseg.launch import run_grid

    def plan(*extra):
        args = ["--exp", "pascal_all", "--methods", "unimatch", "--splits", "92", "--dry-run", "--json", "--no-check",
                "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--output-dir", str(tmp_path / "runs"), *extra]
        assert run_grid.main(args) == 0
        (cell,) = json.loads(capsys.readouterr().out)
        return cell

    paper, one = plan(), plan("--gpus", "1")
    assert (paper["gpus"], paper["batch_size"], paper["accum_steps"], paper["global_batch"]) == (4, 2, 1, 8)
    assert (one["gpus"], one["batch_size"], one["accum_steps"], one["global_batch"]) == (1, 2, 4, 8)
    assert one["effective_lr"] == paper["effective_lr"] == pytest.approx(1e-3) and one["hash"] != paper["hash"]
    scaled = plan("--gpus", "1", "--set", "optim.keep_global_batch=false")
    assert (scaled["accum_steps"], scaled["global_batch"]) == (1, 2) and scaled["effective_lr"] == pytest.approx(2.5e-4)
    eight = plan("--gpus", "8")  # more GPUs than the paper: the per-GPU batch shrinks
    assert (eight["batch_size"], eight["accum_steps"], eight["global_batch"]) == (1, 1, 8)
    with pytest.raises(ConfigError, match="global batch of 8 images does not split over 3 GPUs"):
        plan("--gpus", "3")
    assert not (tmp_path / "mlflow.db").exists()  # a plan writes nothing
