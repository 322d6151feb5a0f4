"""Search spaces: --param strings, experiment search: blocks and their validation against the config schema."""

import pytest

from semiseg.experiments.registry import expand, load_experiment
from semiseg.experiments.search import SearchDim, parse_block, parse_param, validate
from semiseg.config import config_to_dict
from semiseg.errors import ConfigError


def test_param_forms():
    assert parse_param("loss.conf_thresh=0.80:0.99") == SearchDim("loss.conf_thresh", "uniform", (0.8, 0.99))
    assert parse_param("optim.lr=log:1e-4:1e-2") == SearchDim("optim.lr", "loguniform", (1e-4, 1e-2))
    assert parse_param("seed=int:0:3") == SearchDim("seed", "randint", (0, 3))
    assert parse_param("loss.criterion=choice:ce,ohem") == SearchDim("loss.criterion", "choice", ("ce", "ohem"))
    assert parse_param("loss.conf_thresh=grid:0.9,0.95") == SearchDim("loss.conf_thresh", "grid", (0.9, 0.95))


@pytest.mark.parametrize("text, words", [
    ("loss.conf_thresh", "KEY=SPEC"), ("a=1:2:3", "SPEC must be one of"), ("a=0.9:0.8", "LOW < HIGH"),
    ("a=log:0:1", "LOW > 0"), ("a=int:0.5:2", "integer bounds"), ("a=grid:", "non-empty"),
])
def test_bad_params_name_the_problem(text, words):
    with pytest.raises(ConfigError, match=words):
        parse_param(text)


def test_block_errors_name_the_file():
    with pytest.raises(ConfigError, match=r"x.yaml: unknown search kind 'range'"):
        parse_block({"loss.conf_thresh": {"range": [0, 1]}}, "x.yaml")
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_block({"loss.conf_thresh": [0.9, 0.95]}, "x.yaml")


def test_values_are_checked_against_the_schema():
    (cell,) = expand(load_experiment("demo_thresholds"), {"method": ["fixmatch"]})
    cell_cfg = config_to_dict(cell.config)
    validate({"loss.conf_thresh": parse_param("loss.conf_thresh=0.8:0.99")}, cell_cfg)
    with pytest.raises(ConfigError, match=r"loss.conf_thresh.*must be <= 1"):
        validate({"loss.conf_thresh": parse_param("loss.conf_thresh=0.8:1.5")}, cell_cfg)
    with pytest.raises(ConfigError, match="did you mean 'loss.conf_thresh'"):
        validate({"loss.conf_tresh": parse_param("loss.conf_tresh=0.8:0.9")}, cell_cfg)
    with pytest.raises(ConfigError, match="not searchable"):
        validate({"runtime.threads": parse_param("runtime.threads=int:1:2")}, cell_cfg)


def test_demo_thresholds_experiment():
    exp = load_experiment("demo_thresholds")
    assert exp.grid["method"] == ["fixmatch", "unimatch"]
    assert exp.search["loss.conf_thresh"].kind == "grid" and 0.95 in exp.search["loss.conf_thresh"].values
    assert exp.defaults["data"]["dataset"] == "demo"  # inherited from demo


def test_the_tuned_file_plans_the_recipe_of_the_best_trial(tmp_path):
    """The tuned YAML carries the study's fixed --set overrides (and a --gpus re-fit) with the best values:
    planning it gives each cell the recipe its best trial trained."""
    from semiseg.config import config_from_dict, recipe_hash
    from semiseg.launch.tune import trial_config, write_best

    sets = ["train.epochs=2", "data.crop_size=32"]
    cells = expand(load_experiment("pascal_all"), {"method": ["unimatch"], "split": ["92"], "seed": [0]}, sets,
                   gpus=1)
    best = {"loss.conf_thresh": 0.9137, "optim.lr": 0.00123}
    trial = config_from_dict(trial_config(config_to_dict(cells[0].config), {"cell": 0, **best}, "t1"))
    out = tmp_path / "tuned.yaml"
    write_best(out, "pascal_all", "s1", "pascal_all-tune", "p1", cells,
               {0: {"params": best, "best": 70.0, "trial": "t1"}}, sets, refit=True)
    planned = expand(load_experiment(str(out)), {"seed": [0]})
    (mine,) = [c for c in planned if c.axes.get("method") == "unimatch" and c.axes.get("split") == "92"]
    assert recipe_hash(mine.config) == recipe_hash(trial)
    assert mine.config.train.gpus == 1 and mine.config.train.epochs == 2
