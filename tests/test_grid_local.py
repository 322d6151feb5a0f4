"""The demo grid on the local backend, for real: skip finished cells, resume a SIGKILLed cell."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from semiseg.tracking import metric_history, search_cells

ROOT = Path(__file__).resolve().parents[1]
#: the demo grid with a random-init encoder: these tests check orchestration (test_pretext covers the
#: demo_pretext weights, whose full pretraining takes minutes)
NO_PRETEXT = ["--set", "model.pretrained="]


def grid(tmp, demo_root, *extra, epochs=1, iters=2):
    return [sys.executable, str(ROOT / "launch" / "run_grid.py"), "--exp", "demo", "--splits", "1_16",
            "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--output-dir", str(tmp / "runs"),
            "--set", f"data.root={demo_root}", *NO_PRETEXT, "--set", "data.crop_size=32",
            "--set", f"train.epochs={epochs}",
            "--set", f"train.max_iters_per_epoch={iters}", "--set", "train.batch_size=4", *extra]


def test_second_launch_trains_nothing(tmp_path, demo_root):
    cmd = grid(tmp_path, demo_root, "--methods", "supervised,unimatch", "--max-parallel", "2")
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "done: 2 finished, 0 failed" in first.stdout
    runs = search_cells(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")
    assert sorted(r.status for r in runs) == ["FINISHED", "FINISHED"]
    assert {r.tags["semiseg.exp"] for r in runs} == {"demo"}

    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "nothing to train" in second.stdout
    assert len(search_cells(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")) == 2

    plan = json.loads(subprocess.run(cmd + ["--dry-run", "--json"], capture_output=True, text=True,
                                     check=True).stdout)
    assert [c["state"] for c in plan] == ["finished", "finished"]
    assert {c["method"] for c in plan} == {"supervised", "unimatch"}


def test_sigkilled_cell_resumes_into_the_same_run(tmp_path, demo_root):
    cmd = grid(tmp_path, demo_root, "--methods", "fixmatch", epochs=3, iters=3)
    launcher = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
    progress = None
    deadline = time.time() + 300
    while time.time() < deadline:
        assert launcher.poll() is None, launcher.stdout.read()
        found = list((tmp_path / "runs").glob("*/*/progress.json"))
        if found:
            data = json.loads(found[0].read_text() or "{}")
            if data.get("epoch", 0) >= 1:
                progress = data
                break
        time.sleep(0.2)
    assert progress is not None, "the cell never finished its first epoch"
    os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and the training process die without a word
    launcher.wait()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (killed,) = search_cells(uri, "demo")
    assert killed.status == "RUNNING"  # nobody could mark it

    plan = json.loads(subprocess.run(cmd + ["--dry-run", "--json"], capture_output=True, text=True,
                                     check=True).stdout)
    assert plan[0]["state"] == "interrupted"
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout
    assert "1 resumed" in again.stdout
    (run,) = search_cells(uri, "demo")
    assert run.run_id == killed.run_id and run.status == "FINISHED"
    assert int(run.tags["semiseg.resumed_at_epoch"]) >= 1
    log = (next((tmp_path / "runs").glob("*/*/train.log"))).read_text()
    assert "resumed from" in log


def test_concurrent_launches_train_each_cell_once(tmp_path, demo_root):
    cmd = grid(tmp_path, demo_root, "--methods", "supervised,fixmatch", "--max-parallel", "2", iters=3)
    launchers = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in launchers]
    assert all(p.returncode == 0 for p in launchers), outputs
    runs = search_cells(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo")
    assert len(runs) == 2 and len({r.cell_hash for r in runs}) == 2  # one run per cell, none duplicated
    assert {r.status for r in runs} == {"FINISHED"}
    starts = sum(out.count("  start ") for out in outputs)
    assert starts == 2, outputs  # every cell was started by exactly one of the two launchers


def test_failed_cell_is_recorded_and_rerun_only_with_retry_failed(tmp_path, demo_root):
    bad = grid(tmp_path, demo_root, "--methods", "supervised", "--set", "data.dataset=pascal",
               "--set", f"data.root={tmp_path / 'no_pascal'}", "--no-check")  # past the pre-launch data check
    first = subprocess.run(bad, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1 and "0 finished, 1 failed" in first.stdout
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (failed,) = search_cells(uri, "demo")
    assert failed.status == "FAILED" and "no_pascal" in failed.tags["semiseg.error"]
    again = subprocess.run(bad, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to train" in again.stdout
    retried = subprocess.run(bad + ["--retry-failed"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert retried.returncode == 1 and "1 failed" in retried.stdout
    assert len(search_cells(uri, "demo")) == 2  # the retry is a new run, the old one is kept


def _one_run_per_cell(uri: str, experiment: str, cells: int, epochs: int) -> None:
    runs = search_cells(uri, experiment)
    assert len(runs) == cells and len({r.cell_hash for r in runs}) == cells, [(r.cell_hash, r.status) for r in runs]
    assert {r.status for r in runs} == {"FINISHED"}
    for r in runs:
        assert [s for s, _ in metric_history(uri, r.run_id, "val/miou")] == list(range(epochs))


def test_three_launches_at_once_train_each_cell_once(tmp_path, demo_root):
    cmd = grid(tmp_path, demo_root, "--methods", "supervised,fixmatch", "--max-parallel", "1", iters=3)
    launchers = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(3)]
    outputs = [p.communicate(timeout=600)[0] for p in launchers]
    assert all(p.returncode == 0 for p in launchers), outputs
    _one_run_per_cell(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo", cells=2, epochs=1)
    assert sum(out.count("  start ") for out in outputs) == 2, outputs


def test_launches_racing_a_finishing_cell_leave_it_finished(tmp_path, demo_root):
    cmd = grid(tmp_path, demo_root, "--methods", "supervised", epochs=2, iters=3)
    first = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:  # the cell is in its last epoch
        found = list((tmp_path / "runs").glob("*/*/progress.json"))
        if found and json.loads(found[0].read_text() or "{}").get("epoch", 0) >= 1:
            break
        time.sleep(0.05)
    late = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in (first, *late)]
    assert all(p.returncode == 0 for p in (first, *late)), outputs
    _one_run_per_cell(f"sqlite:///{tmp_path / 'mlflow.db'}", "demo", cells=1, epochs=2)


def test_two_experiments_sharing_a_cell_get_their_own_runs(tmp_path, demo_root):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    shared = grid(tmp_path, demo_root, "--methods", "fixmatch")
    thresholds = [*shared[:3], "demo_thresholds", *shared[4:]]  # same cell, in the threshold study's grid
    for cmd in (thresholds, shared):
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0 and "done: 1 finished" in done.stdout, done.stdout + done.stderr
    (a,), (b,) = search_cells(uri, "demo_thresholds"), search_cells(uri, "demo")
    assert a.cell_hash == b.cell_hash and a.run_id != b.run_id and a.status == b.status == "FINISHED"
    assert sorted(p.parent.name for p in (tmp_path / "runs").glob("*/*/last.pth")) == [a.cell_hash[:10]] * 2


def test_two_process_cells_run_data_parallel_on_the_local_backend(tmp_path, demo_root):
    from semiseg.tracking import _client

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = grid(tmp_path, demo_root, "--methods", "supervised,unimatch", "--set", "train.gpus=2", "--max-parallel", "2")
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "done: 2 finished, 0 failed" in done.stdout, done.stdout + done.stderr
    runs = search_cells(uri, "demo")
    assert len(runs) == 2 and {r.status for r in runs} == {"FINISHED"}
    for run in runs:
        assert _client(uri).get_run(run.run_id).data.params["derived.world_size"] == "2"


def test_a_killed_rank_stops_its_cell_and_a_relaunch_resumes_it(tmp_path, demo_root):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = grid(tmp_path, demo_root, "--methods", "fixmatch", "--set", "train.gpus=2", epochs=3, iters=3)
    launcher = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pids = next(line for line in launcher.stdout if "  start " in line).split(" pid ")[1].split(",")[0].split()
    assert len(pids) == 2
    deadline = time.time() + 300
    while time.time() < deadline and launcher.poll() is None:  # the first epoch is checkpointed
        if list((tmp_path / "runs").glob("*/*/last.pth")):
            break
        time.sleep(0.05)
    os.kill(int(pids[1]), signal.SIGKILL)  # one rank dies mid-run; its peer is stopped by the launcher
    out = launcher.communicate(timeout=300)[0]
    assert launcher.returncode == 1 and "1 failed" in out, out
    (killed,) = search_cells(uri, "demo")
    assert killed.status in ("RUNNING", "KILLED")  # interrupted, never FAILED: a lost rank is resumable
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "1 resumed" in again.stdout, again.stdout + again.stderr
    (run,) = search_cells(uri, "demo")
    assert run.run_id == killed.run_id and run.status == "FINISHED"
    assert [s for s, _ in metric_history(uri, run.run_id, "val/miou")] == [0, 1, 2]
