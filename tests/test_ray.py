"""The Ray backend and Ray Tune on a real local Ray runtime (127.0.0.1, Ray's state inside the test folder)."""

import json
import os
import signal
import threading
import time

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when ray is imported: node address 127.0.0.1
try:
    import ray
except ImportError:  # Ray is a required component: CI fails without it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("ray is not installed", allow_module_level=True)

from semiseg.experiments.registry import expand, load_experiment
from semiseg.launch import run_grid, tune
from semiseg.tracking import _client, child_runs, find_tagged_run, metric_history, search_cells

#: the demo grid with a random-init encoder: these tests check orchestration (test_pretext covers the
#: demo_pretext weights, whose full pretraining takes minutes)
NO_PRETEXT = ["--set", "model.pretrained="]

TINY = [*NO_PRETEXT, "--set", "data.crop_size=32", "--set", "train.batch_size=4"]


@pytest.fixture(scope="module")
def ray_runtime(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", _temp_dir=str(folder / "rt"), include_dashboard=False,
             log_to_driver=False)
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    yield folder
    ray.shutdown()


@pytest.fixture
def sigterm_restored():
    old = signal.getsignal(signal.SIGTERM)  # run_grid.main installs its own handler
    yield
    signal.signal(signal.SIGTERM, old)


def grid_args(tmp, demo_root, *extra, epochs=2, iters=5):
    return ["--exp", "demo", "--backend", "ray", "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}",
            "--output-dir", str(tmp / "runs"), "--set", f"data.root={demo_root}", *TINY,
            "--set", f"train.epochs={epochs}", "--set", f"train.max_iters_per_epoch={iters}", *extra]


def test_demo_grid_on_ray_finishes_every_cell(ray_runtime, tmp_path, demo_root, capsys, sigterm_restored):
    args = grid_args(tmp_path, demo_root)
    assert run_grid.main(args) == 0
    out = capsys.readouterr().out
    assert "done: 6 finished, 0 failed, 0 skipped" in out, out
    runs = search_cells(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")
    assert len(runs) == 6 and {r.status for r in runs} == {"FINISHED"}
    assert {r.tags["semiseg.backend"] for r in runs} == {"ray"}
    assert {(r.tags["semiseg.method"], r.tags["semiseg.split"]) for r in runs} == {
        (m, s) for m in ("supervised", "fixmatch", "unimatch") for s in ("1_16", "1_4")}
    assert all(len(metric_history(f"sqlite:///{tmp_path / 'mlflow.db'}", r.run_id, "val/miou")) == 2 for r in runs)

    assert run_grid.main(args) == 0  # idempotent: the plan finds every cell finished
    assert "nothing to train" in capsys.readouterr().out
    assert len(search_cells(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")) == 6


def test_killed_worker_is_retried_and_resumes(ray_runtime, tmp_path, demo_root, capsys, sigterm_restored):
    killed = {}

    def kill_after_first_epoch():
        deadline = time.time() + 240
        while time.time() < deadline:
            for path in (tmp_path / "runs").glob("*/*/progress.json"):
                prog = json.loads(path.read_text() or "{}")
                if prog.get("epoch", 0) >= 1 and prog.get("status") == "running":
                    killed["run_id"] = json.loads((path.parent / "run.json").read_text())["run_id"]
                    killed["pid"], killed["epoch"] = prog["pid"], prog["epoch"]
                    os.kill(prog["pid"], signal.SIGKILL)  # the Ray worker training the cell dies
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_after_first_epoch, daemon=True)
    watcher.start()
    assert run_grid.main(grid_args(tmp_path, demo_root, "--methods", "fixmatch", "--splits", "1_16",
                                   epochs=4, iters=3)) == 0
    watcher.join(timeout=5)
    out = capsys.readouterr().out
    assert killed, "the cell never reached the end of its first epoch"
    assert killed["pid"] != os.getpid()
    assert "worker lost, attempt 2 resumes" in out and "after 1 retry(ies)" in out, out
    (run,) = search_cells(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")
    assert run.run_id == killed["run_id"] and run.status == "FINISHED"  # the retry resumed into the same run
    assert int(run.tags["semiseg.resumed_at_epoch"]) >= killed["epoch"]
    assert run.tags["semiseg.ray_attempt"] == "2"
    log = next((tmp_path / "runs").glob("*/*/train.log")).read_text()
    assert "resumed from" in log and "ray: attempt 2" in log
    steps = [s for s, _ in metric_history(f"sqlite:///{tmp_path / 'mlflow.db'}", run.run_id, "val/miou")]
    assert sorted(set(steps)) == [0, 1, 2, 3]


def test_threshold_search_logs_parent_and_children(ray_runtime, tmp_path, demo_root, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    best_out = tmp_path / "best.yaml"
    rc = tune.main(["--exp", "demo_thresholds", "--methods", "fixmatch", "--param", "loss.conf_thresh=0.80:0.99",
                    "--num-samples", "4", "--scheduler", "asha", "--study", "thr", "--tracking-uri", uri,
                    "--output-dir", str(tmp_path / "runs"), "--best-out", str(best_out),
                    "--set", f"data.root={demo_root}", *TINY, "--set", "train.epochs=2",
                    "--set", "train.max_iters_per_epoch=3"])
    out = capsys.readouterr().out
    assert rc == 0, out
    parent = find_tagged_run(uri, "demo_thresholds-tune", "semiseg.study", "thr")
    assert parent is not None and parent.status == "FINISHED"
    children = child_runs(uri, "demo_thresholds-tune", parent.run_id)
    assert len(children) == 4
    client = _client(uri)
    thresholds, best = [], {}
    for child in children:
        params = client.get_run(child.run_id).data.params
        tau = float(params["loss.conf_thresh"])
        assert 0.80 <= tau <= 0.99 and float(child.tags["semiseg.search.loss.conf_thresh"]) == tau
        history = metric_history(uri, child.run_id, "val/miou")
        assert [s for s, _ in history] == list(range(len(history))) and 1 <= len(history) <= 2
        if child.status == "KILLED":  # ASHA stopped it after its first epoch
            assert child.tags["semiseg.tune.stopped_early"] == "true" and len(history) == 1
        else:
            assert child.status == "FINISHED" and len(history) == 2
        thresholds.append(tau)
        best[tau] = max(v for _, v in history)
    assert len(set(thresholds)) == 4
    top = float(parent.tags["semiseg.best.loss.conf_thresh"])  # a tiny budget may tie: any best one will do
    assert best[top] == pytest.approx(max(best.values())) == pytest.approx(parent.metrics["best_miou"])
    assert f"best: fixmatch/1_16/0 {{'loss.conf_thresh': {top}}}" in out

    (cell,) = expand(load_experiment(str(best_out)))  # the written override is a runnable experiment
    assert cell.config.method == "fixmatch" and cell.config.loss.conf_thresh == top


def test_tune_trials_with_epochs_left_unevaluated(ray_runtime, tmp_path, demo_root, capsys):
    """eval.every_n_epochs=2: Tune gets a report only after the evaluated epochs (2 and the last, 3)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rc = tune.main(["--exp", "demo_thresholds", "--methods", "fixmatch", "--param", "loss.conf_thresh=0.80:0.99",
                    "--num-samples", "2", "--scheduler", "fifo", "--study", "gaps", "--tracking-uri", uri,
                    "--output-dir", str(tmp_path / "runs"), "--best-out", str(tmp_path / "best.yaml"),
                    "--set", f"data.root={demo_root}", *TINY,
                    "--set", "train.epochs=3", "--set", "train.max_iters_per_epoch=2",
                    "--set", "eval.every_n_epochs=2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    parent = find_tagged_run(uri, "demo_thresholds-tune", "semiseg.study", "gaps")
    children = child_runs(uri, "demo_thresholds-tune", parent.run_id)
    assert parent.status == "FINISHED" and len(children) == 2
    for child in children:
        assert child.status == "FINISHED"
        assert [s for s, _ in metric_history(uri, child.run_id, "val/miou")] == [1, 2]
        assert [s for s, _ in metric_history(uri, child.run_id, "train/loss")] == [0, 1, 2]


def test_tune_help_gives_an_example_for_every_option():
    for action in tune.build_parser()._actions:
        if action.dest != "help":
            assert "e.g." in (action.help or ""), action.option_strings


def test_two_process_cells_on_ray(ray_runtime, tmp_path, demo_root, capsys, sigterm_restored):
    args = grid_args(tmp_path, demo_root, "--methods", "supervised,fixmatch", "--splits", "1_16",
                     "--set", "train.gpus=2", epochs=1, iters=3)
    assert run_grid.main(args) == 0
    assert "done: 2 finished, 0 failed" in capsys.readouterr().out
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = search_cells(uri, "demo")
    assert len(runs) == 2 and {r.status for r in runs} == {"FINISHED"}
    assert {_client(uri).get_run(r.run_id).data.params["derived.world_size"] for r in runs} == {"2"}


def test_a_setup_failure_is_recorded_like_on_the_other_backends(ray_runtime, tmp_path, demo_root, capsys,
                                                                 sigterm_restored):
    missing = tmp_path / "no_pascal"
    args = grid_args(tmp_path, demo_root, "--methods", "supervised", "--splits", "1_16", "--no-check",
                     "--set", "data.dataset=pascal", "--set", f"data.root={missing}")
    assert run_grid.main(args) == 1
    assert "0 finished, 1 failed" in capsys.readouterr().out
    (failed,) = search_cells(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")
    assert failed.status == "FAILED" and str(missing) in failed.tags["semiseg.error"]
    assert failed.tags["semiseg.backend"] == "ray"


def test_tune_trains_a_two_rank_cell_and_writes_its_recipe(ray_runtime, tmp_path, demo_root, capsys):
    """A cell with train.gpus: 2 (gloo on this CPU): each trial starts its two ranks, reports every epoch, and
    the tuned file plans the recipe (fixed --set values included) of the best trial."""
    from semiseg.config import recipe_hash

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    best_out = tmp_path / "best.yaml"
    sets = ["--set", f"data.root={demo_root}", *TINY, "--set", "train.epochs=2", "--set", "train.max_iters_per_epoch=2",
            "--set", "train.gpus=2"]
    rc = tune.main(["--exp", "demo", "--methods", "fixmatch", "--splits", "1_16", "--seed-list", "0",
                    "--param", "loss.conf_thresh=grid:0.8,0.9", "--scheduler", "fifo", "--study", "wide",
                    "--tracking-uri", uri, "--output-dir", str(tmp_path / "runs"), "--best-out", str(best_out),
                    *sets])
    out = capsys.readouterr().out
    assert rc == 0, out
    parent = find_tagged_run(uri, "demo-tune", "semiseg.study", "wide")
    children = child_runs(uri, "demo-tune", parent.run_id)
    assert parent.status == "FINISHED" and len(children) == 2
    client = _client(uri)
    for child in children:
        assert child.status == "FINISHED"
        assert client.get_run(child.run_id).data.params["derived.world_size"] == "2"
        assert [s for s, _ in metric_history(uri, child.run_id, "val/miou")] == [0, 1]
    logs = list((tmp_path / "runs" / "tune" / "wide").rglob("train.log"))
    assert len(logs) == 2 and all("2 process(es)" in log.read_text() for log in logs)

    best = next(c for c in children if c.tags["semiseg.trial"] == parent.tags["semiseg.best_trial"])
    (planned,) = expand(load_experiment(str(best_out)), {"seed": [0]})
    assert planned.config.train.gpus == 2 and planned.config.train.epochs == 2
    assert recipe_hash(planned.config) == best.tags["semiseg.recipe"]
