"""The bad-input corpus (``bad_input_cases.py``): every entry point, every kind of bad input, a clean error.

Each case is a real command-line call in a fresh folder. It must exit with code 2 (a user error; 1 for a
check that found bad files, 0 for an input accepted with a warning), print no Python traceback, name the
file/key/value at fault and what is valid, and leave nothing half-written: no folder or MLflow store created by
a read-only command, no partial output, no MLflow run left RUNNING.

Speed: the cases run through their CLI's ``main(argv)`` in two runner processes (``bad_input_runner.py``: a
fresh working folder and captured output per case, the imports paid once), beside the cases that need a
process of their own (loader workers, import-time paths, one per entry point for its script wrapper).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from bad_input_cases import CASES, ROOT, Case
from bad_input_data import snapshot, store_runs

TRACEBACK = "Traceback (most recent call last)"
SCRIPTS = {"run_grid": "launch/run_grid.py", "status": "launch/status.py", "tune": "launch/tune.py",
           "make_tables": "reports/make_tables.py"}
RUNNERS = 2


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def _command(case: Case, d: Path) -> list[str]:
    script = SCRIPTS.get(case.entry)
    head = [str(ROOT / script)] if script else ["-m", f"semiseg.{case.entry}"]
    return [sys.executable, *head, *case.args(d)]


def _run_subprocess(case: Case, d: Path) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(_command(case, d), check=False, cwd=d, capture_output=True, text=True, timeout=300,
                          env=_env())
    return {case.id: {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                      "seconds": round(time.perf_counter() - start, 3)}}


def _run_group(cases: list[tuple[Case, Path]], folder: Path) -> dict:
    spec = [{"id": c.id, "entry": c.entry, "argv": c.args(d), "cwd": str(d),
             "copy_store": str(d / "mlflow.db") if c.store or c.runs else "", "runs": c.runs} for c, d in cases]
    (folder / "cases.json").write_text(json.dumps(spec))
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("bad_input_runner.py")),
                           str(folder / "cases.json"), str(folder / "results.json")],
                          check=False, capture_output=True, text=True, timeout=900, env=_env())
    assert proc.returncode == 0, f"the runner failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads((folder / "results.json").read_text())


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    """Every case set up in its own folder and run once; per case the result plus the folder and its snapshot."""
    folders, before = {}, {}
    for case in CASES:
        d = folders[case.id] = tmp_path_factory.mktemp(case.id[:50], numbered=True)
        if case.setup is not None:
            case.setup(d)
        before[case.id] = snapshot(d)
    # the runners share the in-process cases round-robin, the training cases spread evenly
    inproc = sorted((c for c in CASES if not c.subprocess), key=lambda c: c.entry != "train")
    groups = [[(c, folders[c.id]) for c in inproc[i::RUNNERS]] for i in range(RUNNERS)]
    jobs = [(_run_group, g, tmp_path_factory.mktemp("runner")) for g in groups]
    slow_first = sorted((c for c in CASES if c.subprocess), key=lambda c: "worker" not in c.id)  # they wait on exit
    jobs += [(_run_subprocess, c, folders[c.id]) for c in slow_first]
    results: dict[str, dict] = {}
    with ThreadPoolExecutor(RUNNERS + 2) as pool:  # the runners and two subprocesses at a time
        for part in pool.map(lambda job: job[0](*job[1:]), jobs):
            results.update(part)
    (tmp_path_factory.getbasetemp() / "bad_inputs.json").write_text(json.dumps(results))  # for a look afterwards
    return {cid: {"before": before[cid], **res, "dir": folders[cid]} for cid, res in results.items()}


def _written(case: Case, outcome: dict) -> None:
    """Nothing half-written: what ``case.writes`` allows, and never an MLflow run left RUNNING."""
    d = outcome["dir"]
    after, before = snapshot(d), {p: tuple(v) for p, v in outcome["before"].items()}
    changed = sorted(p for p in set(after) | set(before) if after.get(p) != before.get(p))
    if case.writes == "none":
        assert not changed, f"a failed call changed the folder: {changed}"
        return
    runs = store_runs(d / "mlflow.db") if (d / "mlflow.db").is_file() else []
    assert not [r for r in runs if r[1] == "RUNNING"], f"a run is left RUNNING: {runs}"
    if case.writes == "failed_run":
        assert runs and all(status == "FAILED" and error for _, status, error in runs), f"not one FAILED run: {runs}"
        assert not [p for p in changed if p.endswith(".pth")], f"a checkpoint was written: {changed}"
        assert all(p.split("/")[0] in ("mlflow.db", "mlruns", "runs") for p in changed), f"unexpected: {changed}"


def check(case: Case, outcomes: dict[str, dict]) -> None:
    outcome = outcomes[case.id]
    out, err = outcome["stdout"], outcome["stderr"]
    shown = f"exit {outcome['rc']}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-3000:]}"
    assert TRACEBACK not in out + err, shown
    assert outcome["rc"] == case.rc, shown
    if case.rc == 2:
        assert "error: " in err, shown  # the message is on stderr
    for fragment in case.fragments:
        assert fragment in out + err, f"{fragment!r} not in the output\n{shown}"
    _written(case, outcome)


def _params(kind: str) -> list:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
            for c in CASES if c.kind == kind]


def test_corpus_size():
    assert len(CASES) >= 170


def test_case_ids_are_unique():  # outcomes are keyed by id: a repeated id would hide a case
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("case", _params("config"))
def test_train_config_and_options(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("data"))
def test_train_data_on_disk(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("weights"))
def test_train_weights_files(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("experiment"))
def test_experiment_files(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("launch"))
def test_launch_options(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("reports"))
def test_make_tables(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("splits"))
def test_splits_tool(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("ood"))
def test_ood_tool(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("pretext"))
def test_pretext_tool(case, outcomes):
    check(case, outcomes)


@pytest.mark.parametrize("case", _params("downloads"))
def test_download_tools(case, outcomes):
    check(case, outcomes)
