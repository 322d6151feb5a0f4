"""What the MLflow UI shows, read through a real ``mlflow server``'s REST API: runs by readable names, the
grid's experiment with its description."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from semiseg.runtime import run, run_dir_of
from semiseg.tracking import get_or_create_experiment


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_ui_lists_runs_by_readable_names(make_config, tmp_path):
    cfg = make_config("method=supervised", "runtime.experiment=demo")
    get_or_create_experiment(cfg.runtime.tracking_uri, "demo", "Built-in demo: supervised vs FixMatch vs UniMatch")
    run(cfg)
    port = _free_port()
    db = Path(cfg.runtime.tracking_uri[len("sqlite:///"):])
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
                               "--default-artifact-root", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "mlflow server did not start"
                time.sleep(0.5)
        experiments = _post(f"{base}/api/2.0/mlflow/experiments/search", {"max_results": 10})["experiments"]
        (demo,) = [e for e in experiments if e["name"] == "demo"]
        tags = {t["key"]: t["value"] for t in demo.get("tags", [])}
        assert tags["mlflow.note.content"].startswith("Built-in demo")
        (listed,) = _post(f"{base}/api/2.0/mlflow/runs/search", {"experiment_ids": [demo["experiment_id"]]})["runs"]
        assert listed["info"]["run_name"] == "supervised · demo · 1_32 · tiny · s0"
        run_tags = {t["key"]: t["value"] for t in listed["data"]["tags"]}
        assert run_tags["semiseg.hash"][:10] == run_dir_of(cfg).name  # the hash stays a tag and the folder's name
    finally:
        server.terminate()
        server.wait(timeout=30)
