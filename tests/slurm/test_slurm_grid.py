"""The SLURM backend against a real local cluster: job arrays, no duplicates, preemption and requeue into
the same MLflow run, failures with their reason in status (read-only) and, once synced, in MLflow.

The cluster (tests/slurm/start_cluster.sh) starts once per session. Outside CI the tests skip when it cannot
start (no root, no apt); with CI=true they fail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semiseg.tracking import metric_history, search_cells

#: the demo grid with a random-init encoder: these tests check orchestration (test_pretext covers the
#: demo_pretext weights, whose full pretraining takes minutes)
NO_PRETEXT = ["--set", "model.pretrained="]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "start_cluster.sh"


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Path:
    """The cluster's folder; ``SLURM_CONF`` points at its slurm.conf for the whole session."""
    folder = tmp_path_factory.mktemp("slurm")
    try:
        out = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=600)
        problem = "" if out.returncode == 0 else out.stderr[-3000:]
    except (OSError, subprocess.SubprocessError) as exc:
        problem = str(exc)
    if problem:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True)
        message = f"the local SLURM cluster did not start:\n{problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    yield folder
    subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=120)
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before


def grid_cmd(tmp: Path, demo_root: Path, *extra: str, epochs: int = 2, iters: int = 2, script="run_grid.py"):
    return [sys.executable, str(ROOT / "launch" / script), "--exp", "demo",
            "--tracking-uri", f"sqlite:///{tmp / 'mlflow.db'}", "--output-dir", str(tmp / "runs"),
            "--set", f"data.root={demo_root}", *NO_PRETEXT, "--set", "data.crop_size=32",
            "--set", f"train.epochs={epochs}",
            "--set", f"train.max_iters_per_epoch={iters}", "--set", "train.batch_size=4", *extra]


def run(cmd: list[str], tmp: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, env=env)


def status(tmp: Path, demo_root: Path, *extra: str, **budget) -> list[dict]:
    out = run(grid_cmd(tmp, demo_root, *extra, "--json", script="status.py", **budget), tmp)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def wait_until(predicate, timeout: float, what: str, every: float = 2.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def jobs_in_queue() -> list[str]:
    return subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True,
                          check=True).stdout.split()


def slurm_record(tmp: Path, short: str) -> dict:
    return json.loads((tmp / "runs" / "demo" / short / "slurm.json").read_text())


def test_demo_grid_as_one_job_array_without_duplicates(slurm_cluster, tmp_path, demo_root):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = grid_cmd(tmp_path, demo_root, "--backend", "slurm", "--cluster", "local")
    dry = run(cmd + ["--dry-run"], tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "#SBATCH --array=0-5%2" in dry.stdout and "#SBATCH --partition=debug" in dry.stdout
    assert "#SBATCH --signal=USR2@20" in dry.stdout and "#SBATCH --requeue" in dry.stdout
    assert not jobs_in_queue()

    first = run(cmd, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "6 cell(s)" in first.stdout
    again = run(cmd, tmp_path)  # while the array is queued or running
    assert again.returncode == 0 and "nothing to train" in again.stdout, again.stdout + again.stderr
    plan = status(tmp_path, demo_root)
    records = [slurm_record(tmp_path, c["short"]) for c in plan]
    assert len({r["array_job_id"] for r in records}) == 1  # one array for the whole grid
    assert sorted(r["array_index"] for r in records) == list(range(6))
    assert len(jobs_in_queue()) <= 6

    def all_done():
        runs = search_cells(uri, "demo")
        return len(runs) == 6 and all(r.status in ("FINISHED", "FAILED") for r in runs) and runs

    runs = wait_until(all_done, 420, "the 6 demo cells to finish")
    assert [r.status for r in runs] == ["FINISHED"] * 6, [(r.status, r.tags.get("semiseg.error")) for r in runs]
    by_hash = {r.cell_hash: r for r in runs}
    for rec, cell in zip(records, plan):
        tags = by_hash[cell["hash"]].tags
        assert tags["semiseg.slurm.job_id"] == rec["job_id"] == f"{rec['array_job_id']}_{rec['array_index']}"
        assert tags["semiseg.slurm.log"] == rec["log"] and Path(rec["log"]).is_file()
        assert tags["semiseg.slurm.requeues"] == "0" and tags["semiseg.backend"] == "slurm"

    final = wait_until(lambda: [c for c in status(tmp_path, demo_root)
                                if c["slurm_state"] == "COMPLETED"] or None, 60, "sacct to report COMPLETED")
    assert len(final) == 6 and {c["state"] for c in final} == {"finished"}
    third = run(cmd, tmp_path)
    assert "nothing to train" in third.stdout and len(search_cells(uri, "demo")) == 6

    sets = [arg for pair in zip(cmd, cmd[1:]) if pair[0] == "--set" for arg in pair]  # the launch's recipe
    table = run([sys.executable, str(ROOT / "reports" / "make_tables.py"), "--exp", "demo", "--tracking-uri", uri,
                 "--out", str(tmp_path / "tables"), *sets], tmp_path)
    assert table.returncode == 0, table.stderr
    assert "unimatch" in table.stdout and "fixmatch" in table.stdout


def test_preempted_job_requeues_and_resumes_into_the_same_run(slurm_cluster, tmp_path, demo_root):
    from submitit.slurm.slurm import SlurmJob

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    budget = dict(epochs=6, iters=3)
    cmd = grid_cmd(tmp_path, demo_root, "--backend", "slurm", "--methods", "fixmatch", "--splits", "1_16",
                   "--set", "runtime.checkpoint_every_iters=1", **budget)
    (cell,) = json.loads(run(cmd + ["--dry-run", "--json"], tmp_path).stdout)
    out = run(cmd, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    run_dir = tmp_path / "runs" / "demo" / cell["short"]
    progress = run_dir / "progress.json"
    wait_until(lambda: progress.exists() and json.loads(progress.read_text() or "{}").get("epoch", 0) >= 1,
               240, "the first epoch", every=0.5)
    (before,) = search_cells(uri, "demo")
    job_id = slurm_record(tmp_path, cell["short"])["job_id"]
    SlurmJob(folder=tmp_path / "runs" / "_slurm" / "%j", job_id=job_id)._interrupt()  # SIGTERM, then USR2

    def finished():
        runs = search_cells(uri, "demo")
        return runs if runs and runs[0].status in ("FINISHED", "FAILED") else None

    (after,) = wait_until(finished, 360, "the requeued job to finish")
    assert after.status == "FINISHED" and after.run_id == before.run_id
    assert after.tags["semiseg.slurm.requeues"] == "1"
    assert int(after.tags["semiseg.resumed_at_epoch"]) >= 1
    log = Path(slurm_record(tmp_path, cell["short"])["log"]).read_text()
    assert "this job is preempted" in log and "Requeued job" in log and "resumed from" in log
    steps = [step for step, _ in metric_history(uri, after.run_id, "val/miou")]
    assert steps == list(range(budget["epochs"]))  # the epoch counter went on; no epoch repeated or lost


def test_failures_show_their_reason_in_status_and_mlflow(slurm_cluster, tmp_path, demo_root):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bad = tmp_path / "no-such-data"
    bad_sel = ("--methods", "supervised", "--splits", "1_16", "--set", "data.dataset=pascal")
    out = run(grid_cmd(tmp_path, bad, "--backend", "slurm", "--no-check", *bad_sel), tmp_path)  # fails in the job
    assert out.returncode == 0, out.stdout + out.stderr
    long_sel = ("--methods", "unimatch", "--splits", "1_4")
    out = run(grid_cmd(tmp_path, demo_root, "--backend", "slurm", *long_sel, epochs=500), tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr

    # the job's processes all killed at once (as by the OOM killer): nobody reports, sacct knows
    (long_cell,) = status(tmp_path, demo_root, *long_sel, epochs=500)
    progress = tmp_path / "runs" / "demo" / long_cell["short"] / "progress.json"
    wait_until(progress.exists, 240, "the long run to start", every=0.5)
    trainer = json.loads(progress.read_text())["pid"]
    wrapper = int(Path(f"/proc/{trainer}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
    os.kill(wrapper, signal.SIGKILL)
    os.kill(trainer, signal.SIGKILL)
    (killed,) = wait_until(lambda: [c for c in status(tmp_path, demo_root, *long_sel, epochs=500)
                                    if c["state"] == "failed"], 120, "the killed job to be marked FAILED")
    assert killed["slurm_state"] == "FAILED" and "without its run reporting it" in killed["error"]
    assert killed["mlflow_status"] == "RUNNING"  # status only shows it; sync records it
    synced = run(grid_cmd(tmp_path, demo_root, *long_sel, epochs=500, script="sync.py"), tmp_path)
    assert synced.returncode == 0 and "recorded 1 failed SLURM job(s)" in synced.stdout, synced.stdout + synced.stderr
    (killed,) = status(tmp_path, demo_root, *long_sel, epochs=500)
    assert killed["state"] == "failed" and killed["mlflow_status"] == "FAILED"

    (failed,) = wait_until(lambda: [c for c in status(tmp_path, bad, *bad_sel) if c["state"] == "failed"], 240,
                           "the bad-data cell to fail")
    assert str(bad) in failed["error"] and failed["mlflow_status"] == "FAILED"
    assert failed["slurm_state"] == "FAILED"
    runs = {r.cell_hash: r for r in search_cells(uri, "demo")}
    assert str(bad) in runs[failed["hash"]].tags["semiseg.error"]
    assert runs[failed["hash"]].tags["semiseg.slurm.job_id"] == slurm_record(tmp_path, failed["short"])["job_id"]
    assert "ended FAILED" in runs[killed["hash"]].tags["semiseg.error"]
    table = run(grid_cmd(tmp_path, bad, *bad_sel, script="status.py"), tmp_path)
    assert "error: " in table.stdout and str(bad) in table.stdout
