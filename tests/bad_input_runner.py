"""Run many CLI calls in one process: ``python tests/bad_input_runner.py CASES.json RESULTS.json``.

Each case (``{"id", "entry", "argv", "cwd", "copy_store", "runs"}``) runs its entry point's ``main(argv)``
the way the command line does (``run_cli``; ``SystemExit`` as the interpreter handles it; any other
exception printed as a traceback, exit code 1), in its own working folder, with stdout and stderr captured
at the file-descriptor level (so logging, warnings and child processes are caught too); the environment
and signal handlers are restored after each. The imports (torch, MLflow) are paid once for all cases.
``copy_store`` copies a freshly created empty MLflow sqlite store to that path first (creating a store
takes seconds, copying it milliseconds) and ``runs`` are (experiment, run) pairs logged into it; the
result holds the snapshot of the folder taken after that, just before the call.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bad_input_data import snapshot

ENTRIES = {"train": "semiseg.train", "splits": "semiseg.splits", "ood": "semiseg.ood", "pretext": "semiseg.pretext",
           "run_grid": "semiseg.launch.run_grid", "status": "semiseg.launch.status", "tune": "semiseg.launch.tune",
           "make_tables": "semiseg.reports.make_tables", "prepare": "semiseg.data.prepare",
           "weights": "semiseg.weights"}
CASE_TIMEOUT_S = 90


def _timeout(signum, frame):
    raise TimeoutError(f"case ran longer than {CASE_TIMEOUT_S} s")


def _empty_store(folder: Path) -> Path:
    """A migrated, empty MLflow sqlite store (created once per process)."""
    db = folder / "template.db"
    if not db.exists():
        from semiseg import tracking

        tracking.get_or_create_experiment(f"sqlite:///{db}", "Default")
    return db


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)  # as the interpreter does with a message
    return 1


def run_case(case: dict, store_dir: Path) -> dict:
    from semiseg.cli import run_cli

    if case.get("copy_store"):
        shutil.copyfile(_empty_store(store_dir), case["copy_store"])
    if case.get("runs"):
        from semiseg.tracking import log_runs_batch

        for experiment, run in case["runs"]:
            log_runs_batch(f"sqlite:///{case['copy_store']}", experiment, [run])
    before = snapshot(Path(case["cwd"]))
    main = importlib.import_module(ENTRIES[case["entry"]]).main
    env, cwd = dict(os.environ), os.getcwd()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush(), sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
        start = time.perf_counter()
        try:
            os.chdir(case["cwd"])
            signal.signal(signal.SIGALRM, _timeout)
            signal.alarm(CASE_TIMEOUT_S)
            try:
                rc = run_cli(main, list(case["argv"]))
            except SystemExit as exc:
                rc = _exit_code(exc)
            except BaseException:  # noqa: BLE001 - what the interpreter would print
                traceback.print_exc()
                rc = 1
        finally:
            signal.alarm(0)
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        seconds = time.perf_counter() - start
        out.seek(0), err.seek(0)
        return {"rc": rc, "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace"),
                "seconds": round(seconds, 3), "before": before}


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    with tempfile.TemporaryDirectory() as store_dir:
        results = {case["id"]: run_case(case, Path(store_dir)) for case in cases}
    Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
