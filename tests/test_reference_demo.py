"""On the demo: a reference curve written in an official log format, a run falling behind it, the gap in the
status, the alert tag, the resumable stop of --alert-behind, and the grid's cost from the official logs."""

from __future__ import annotations

import json
import subprocess
import sys

from semiseg.tracking import search_cells
from tests.official_log_writer import config_of, write_log
from tests.test_grid_local import ROOT, grid


def _official_demo_log(tmp_path):
    """UniMatch on demo/1_16 with the grid's recipe at crop 32 and 4 epochs, far above what 2 iterations reach."""
    config = config_of("unimatch-v1-2023", dataset="demo", split="1_16", backbone="tiny", epochs=4, crop=32,
                       batch=4, ngpus=1, lr=0.002, conf=0.8)
    return write_log(tmp_path / "official" / "1_16.log", "unimatch-v1-2023", config, [90.0, 91.0, 92.0, 93.0],
                     iters_per_epoch=720, s_per_iter=0.25, eval_s=5.0, classes=("background", "disk"))


def test_a_run_behind_the_official_curve_is_flagged_stopped_and_resumable(tmp_path, demo_root):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = grid(tmp_path, demo_root, "--methods", "unimatch", epochs=4, iters=2)
    dry = subprocess.run(cmd + ["--dry-run"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "no official reference runs for them (none available" in dry.stdout, dry.stdout + dry.stderr

    imported = subprocess.run([sys.executable, "-m", "semiseg.reference", "import", str(_official_demo_log(tmp_path)),
                               "--tracking-uri", uri], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    plan = json.loads(subprocess.run(cmd + ["--dry-run", "--json"], cwd=tmp_path, capture_output=True, text=True,
                                     check=True).stdout)
    # 1 GPU x 4 epochs x (720 iterations x 0.25 s + 5 s of evaluation), at half the official logs' speed
    assert plan[0]["est_source"] == "official logs"
    assert abs(plan[0]["est_hours"] - 4 * (720 * 0.25 + 5) / 3600) < 1e-3
    slower = subprocess.run(cmd + ["--dry-run", "--speed-factor", "0.5"], cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout
    assert f"{2 * 4 * (720 * 0.25 + 5) / 3600:6.2f}o" in slower and "marked o: from official logs" in slower

    first = subprocess.run(cmd + ["--alert-behind", "2", "--alert-patience", "2"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600)
    assert first.returncode == 130 and "alert: " in first.stdout, first.stdout + first.stderr
    assert "1 stopped (KILLED, resumable)" in first.stdout
    (run,) = search_cells(uri, "demo")
    assert run.status == "KILLED"
    assert run.tags["semiseg.alert.epoch"] == "2"
    assert "behind the official curve at epoch 2" in run.tags["semiseg.alert"]

    status = subprocess.run([sys.executable, str(ROOT / "launch" / "status.py"), *cmd[2:]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if " unimatch " in x)
    gap = float(line.split("@e2")[0].split()[-1])
    assert -91.0 <= gap <= -2.0 and "alert: " in status.stdout and "vs official" in status.stdout
    record = json.loads(subprocess.run([sys.executable, str(ROOT / "launch" / "status.py"), *cmd[2:], "--json"],
                                       cwd=tmp_path, capture_output=True, text=True, check=True).stdout)[0]
    assert record["official"]["epoch"] == 2 and record["official"]["official"] == 91.0
    assert record["official"]["gap"] == record["official"]["miou"] - 91.0

    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "1 resumed" in again.stdout, again.stdout + again.stderr
    (done,) = search_cells(uri, "demo")
    assert done.run_id == run.run_id and done.status == "FINISHED" and done.tags["semiseg.resumed_at_epoch"] == "2"


def test_alert_and_speed_options_are_checked(tmp_path):
    from semiseg.launch import run_grid
    from semiseg.cli import run_cli

    base = ["--exp", "demo", "--dry-run", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    assert run_cli(run_grid.main, base + ["--alert-patience", "2"]) == 2
    assert run_cli(run_grid.main, base + ["--alert-behind", "-1"]) == 2
    assert run_cli(run_grid.main, base + ["--speed-factor", "0"]) == 2
    assert not (tmp_path / "mlflow.db").exists()
