"""One record of a cell's state (semiseg.cells) for every command, and tables by recipe.

A path-loaded experiment that inherits another trains under its file's stem; plan, status and a second
launch must find its finished cell there. A table averages the seeds of one recipe only.
"""

import json
import subprocess
import sys
from pathlib import Path

from semiseg.cells import CellRecord, survey
from semiseg.config import recipe_hash
from semiseg.experiments.registry import expand, load_experiment
from semiseg.launch import run_grid, status
from semiseg.reports.make_tables import main as make_tables
from semiseg.tracking import RunTracker, cell_tags, search_cells

ROOT = Path(__file__).resolve().parents[1]
MINE = "description: a copy of one demo cell, kept outside experiments/\ninherit: demo\n" \
       "grid: {method: [supervised], split: ['1_16'], seed: [0]}\n"


def test_a_path_loaded_inherited_experiment_is_finished_in_every_command(tmp_path, demo_root, capsys):
    exp = tmp_path / "elsewhere" / "mine.yaml"
    exp.parent.mkdir()
    exp.write_text(MINE)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sets = [f"data.root={demo_root}", "model.pretrained=", "data.crop_size=32", "train.epochs=1",
            "train.max_iters_per_epoch=2"]
    select = ["--exp", str(exp), "--tracking-uri", uri, "--output-dir", str(tmp_path / "runs"),
              *(arg for item in sets for arg in ("--set", item))]
    first = subprocess.run([sys.executable, str(ROOT / "launch" / "run_grid.py"), *select], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0 and "done: 1 finished" in first.stdout, first.stdout + first.stderr
    (run,) = search_cells(uri, "mine")  # the file's stem names the MLflow experiment and the run folder
    assert run.status == "FINISHED" and run.tags["semiseg.exp"] == "mine"

    assert run_grid.main([*select, "--dry-run", "--json"]) == 0
    assert [c["state"] for c in json.loads(capsys.readouterr().out)] == ["finished"]
    assert status.main([*select, "--json"]) == 0
    assert [c["state"] for c in json.loads(capsys.readouterr().out)] == ["finished"]
    assert run_grid.main(select) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert len(search_cells(uri, "mine")) == 1

    (cell,) = expand(load_experiment(str(exp)), sets=sets,
                     runtime={"tracking_uri": uri, "output_dir": str(tmp_path / "runs")})
    record = CellRecord(cell.config)
    assert record.finished_run() == run.run_id and record.run_dir.parent.name == "mine"
    assert survey([cell.config])[0].state == "finished"


def _log(uri: str, cfg, value: float) -> None:
    tracker = RunTracker(uri, "demo")
    tracker.create(f"{cfg.method}-{cfg.seed}", {**cell_tags(cfg), "semiseg.exp": "demo", "semiseg.n_labeled": 45})
    tracker.log({"best_miou": value}, step=0)
    tracker.finish("FINISHED")


def test_a_table_entry_is_one_recipe_with_its_gain_tested(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    demo = load_experiment("demo")
    cells = expand(demo, {"split": ["1_16"], "method": ["supervised", "unimatch"], "seed": [0, 1]})
    values = {("supervised", 0): 40.0, ("supervised", 1): 41.0, ("unimatch", 0): 50.0, ("unimatch", 1): 51.0}
    for cell in cells:
        _log(uri, cell.config, values[(cell.config.method, cell.config.seed)])
    (smoke,) = expand(demo, {"split": ["1_16"], "method": ["unimatch"], "seed": [0]}, sets=["train.epochs=2"])
    assert recipe_hash(smoke.config) != recipe_hash(cells[-1].config)
    _log(uri, smoke.config, 10.0)  # a smoke run of the same method, split and seed: another recipe

    assert make_tables(["--exp", "demo", "--tracking-uri", uri, "--out", str(tmp_path / "out"), "--no-log"]) == 0
    out = capsys.readouterr().out
    unimatch = next(line for line in out.splitlines() if line.startswith("| unimatch"))
    assert "50.5 ± 0.7 (n=2)" in unimatch  # the two seeds of the recipe; the 10.0 run is not averaged in
    delta = next(line for line in out.splitlines() if line.startswith("| Δ vs supervised: unimatch"))
    assert "+10.0* (p=" in delta and "n=2/2" in delta
    assert "Other recipes" in out and f"[recipe {recipe_hash(smoke.config)[:10]}]: 10.0 (n=1)" in out

    assert make_tables(["--exp", "demo", "--set", "train.epochs=2", "--tracking-uri", uri, "--out",
                        str(tmp_path / "out"), "--no-log"]) == 0
    unimatch = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| unimatch"))
    assert "10.0 (n=1)" in unimatch  # the smoke recipe's own table
