"""SLURM backend: a grid's pending cells go out as one submitit job array per resource shape.

Resources come from a cluster profile (``clusters/<name>.yaml`` in the workspace, else a built-in one in
``semiseg/launch/clusters/``; ``semiseg init`` copies ``example_gpu.yaml`` into the workspace), then the
experiment's ``slurm:`` section, then ``--cluster-set key=value``. Each array task runs :class:`CellJob`:
it starts ``python -m semiseg.train`` once per task (DDP ranks from the SLURM environment), tags the
MLflow run with the job id, array index, log path and requeue count, and on SLURM's signal (preemption,
or ``signal_delay_s`` before the time limit) lets the trainer checkpoint, then requeues itself, at most
``max_requeues`` times; the requeued task resumes into the same MLflow run.

What the cluster must allow: requeueing (``JobRequeue=1`` or ``--requeue``, which every job here asks for);
for preemption signals ``SlurmctldParameters=preempt_send_user_signal`` and ``PreemptMode=REQUEUE``;
``sacct`` (slurmdbd accounting) so that jobs that died without reporting get their reason.

Each submitted cell's folder holds ``slurm.json`` (job id, array index, log path): a cell whose job is
still queued or running is never submitted again, and a job that ended badly while its MLflow run still
says RUNNING (out of memory, node failure, killed) is marked FAILED with the reason from ``sacct`` (by the
launcher, and by ``semiseg sync``; ``semiseg status`` only shows it).

submitit is the optional ``[slurm]`` extra: without it this module imports, and choosing the backend says what
to install.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

try:
    import submitit
    _Checkpointable: type = submitit.helpers.Checkpointable
except ImportError:  # the [slurm] extra is not installed; run_grid names it when --backend slurm is chosen
    submitit = None
    _Checkpointable = object

import semiseg
from semiseg.launch import sbatch
from semiseg.launch.local import claim, release, skip_reason
from semiseg.launch.plan import PlannedCell
from semiseg.cells import ENDED, CellRecord
from semiseg.config import apply_overrides, load_config, load_yaml, save_config
from semiseg.errors import ConfigError, UserError
from semiseg.runfiles import read_json, write_json
from semiseg.tracking import cell_tags, record_failure
from semiseg.workspace import clusters_dir, find_yaml, yaml_names

CLUSTERS_DIR = Path(__file__).resolve().parent / "clusters"
#: the folder holding the ``semiseg`` package (a clone's root, or site-packages), on the compute nodes' PYTHONPATH
PROJECT_ROOT = Path(semiseg.__file__).resolve().parents[1]
JOB_FILE = "slurm.json"
#: profile key → (default, type, help)
PROFILE_KEYS: dict[str, tuple[Any, type, str]] = {
    "description": ("", str, "one line"),
    "partition": (None, str, "partition (--partition)"),
    "account": (None, str, "account to charge (--account)"),
    "qos": (None, str, "quality of service (--qos)"),
    "constraint": (None, str, "node features (--constraint)"),
    "gpu": (True, bool, "one GPU per task (--gpus-per-node = train.gpus); false on CPU-only clusters"),
    "cpus_per_task": (4, int, "CPUs per task (--cpus-per-task)"),
    "mem_gb": (32, float, "memory per node in GB (--mem)"),
    "time_min": (1440, int, "time limit in minutes (--time)"),
    "array_parallelism": (16, int, "array tasks running at once (the %N of --array)"),
    "signal_delay_s": (120, int, "seconds before the time limit at which USR2 asks for a checkpoint"),
    "max_requeues": (5, int, "preemptions/time limits a cell may survive (requeues), then it stops"),
    "setup": ([], list, "shell lines run before srun (module load ...)"),
    "sbatch": ({}, dict, "other sbatch flags, e.g. {reservation: x}"),
    "python": (None, str, "python on the compute nodes; default: the launching interpreter"),
}
#: squeue/sacct states of a job that will still run (do not submit again)
ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                 "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}
EXIT_INTERRUPTED = 130  # semiseg.train after a graceful stop


def add_arguments(parser) -> None:
    """The SLURM options of ``run_grid.py`` and ``status.py``."""
    parser.add_argument("--cluster", default=os.environ.get("SEMISEG_CLUSTER", "local"),
                        help="with --backend slurm: cluster profile: a name in the workspace's clusters/ or a "
                             "built-in one, or a YAML path "
                             "(default $SEMISEG_CLUSTER or 'local'), e.g. --cluster example_gpu")
    parser.add_argument("--cluster-set", dest="cluster_sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override a cluster profile value, e.g. --cluster-set time_min=120 "
                             "--cluster-set sbatch.reservation=demo (repeatable)")


# --- resources -------------------------------------------------------------------------------------------

def load_profile(name: str, experiment: dict[str, Any] | None = None, sets: list[str] | None = None) -> dict:
    """The cluster profile ``name`` with the experiment's ``slurm:`` section and ``sets`` applied, validated."""
    folders = [clusters_dir(), CLUSTERS_DIR]
    path = Path(name) if name.endswith((".yaml", ".yml")) or "/" in name else find_yaml(name, folders)
    if path is None or not path.is_file():
        known = ", ".join(yaml_names(folders))
        where = path or f"{name}.yaml in {' or '.join(map(str, folders))}"
        raise ConfigError(f"unknown cluster profile {name!r} ({where} does not exist); available: {known}")
    data = {k: default for k, (default, _, _) in PROFILE_KEYS.items()}
    for source, values in ((str(path), load_yaml(path)), ("the experiment's slurm section", experiment or {})):
        for key, value in values.items():
            _check_key(source, key, value)
            data[key] = value
    data = apply_overrides(data, sets or [])
    for key, value in data.items():
        _check_key("--cluster-set", key, value)
    return data


def _check_key(source: str, key: str, value: Any) -> None:
    if key not in PROFILE_KEYS:
        raise ConfigError(f"{source}: unknown cluster key {key!r}; valid: {', '.join(PROFILE_KEYS)}")
    default, tp, _ = PROFILE_KEYS[key]
    if value is None and default is None:
        return
    accepted = (int, float) if tp is float else tp
    if not isinstance(value, accepted) or (tp in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"{source}: cluster key {key!r} must be {tp.__name__}, got {value!r}")
    low = 0 if key in ("max_requeues", "signal_delay_s") else 1
    if tp in (int, float) and value < low:
        raise ConfigError(f"{source}: cluster key {key!r} must be at least {low}, got {value!r}")


def shape_of(cell_cfg) -> int:
    """A cell's resource shape: its number of tasks (one per GPU / DDP rank)."""
    return cell_cfg.train.gpus


def sbatch_params(profile: dict, tasks: int, job_name: str) -> dict[str, Any]:
    """submitit SlurmExecutor parameters for cells of ``tasks`` tasks under ``profile``."""
    params = {"job_name": job_name, "time": profile["time_min"], "nodes": 1, "ntasks_per_node": tasks,
              "cpus_per_task": profile["cpus_per_task"], "mem": _mem(profile["mem_gb"]),
              "signal_delay_s": profile["signal_delay_s"], "array_parallelism": profile["array_parallelism"],
              "stderr_to_stdout": True, "additional_parameters": {"requeue": True, **profile["sbatch"]},
              "srun_args": ["--kill-on-bad-exit=1"],  # a crashed rank must not leave the others waiting
              "setup": [f"export PYTHONPATH={shlex.quote(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}",
                        *profile["setup"]]}
    if profile["gpu"]:
        params["gpus_per_node"] = tasks
    for key in ("partition", "account", "qos", "constraint"):
        if profile[key] is not None:
            params[key] = profile[key]
    return params


def _mem(gb: float) -> str:
    return f"{int(gb)}GB" if gb == int(gb) else f"{int(gb * 1024)}MB"


def _python(profile: dict) -> str:
    return profile["python"] or shlex.quote(sys.executable)


def sbatch_script(profile: dict, tasks: int, count: int, folder: Path, job_name: str) -> str:
    """The exact sbatch file submitit writes for an array of ``count`` cells."""
    return sbatch.render(_python(profile), folder, count, sbatch_params(profile, tasks, job_name))


def _groups(todo: list[PlannedCell]) -> dict[int, list[PlannedCell]]:
    groups: dict[int, list[PlannedCell]] = {}
    for p in todo:
        groups.setdefault(shape_of(p.cell.config), []).append(p)
    return groups


def logs_folder(output_dir: Path) -> Path:
    return output_dir / "_slurm" / "%j"


def describe(todo: list[PlannedCell], profile: dict, output_dir: Path, exp: str) -> str:
    """Dry run: the sbatch file of every job array that would be submitted."""
    if not todo:
        return "no job array to submit"
    out = []
    for tasks, cells in _groups(todo).items():
        out.append(f"--- job array of {len(cells)} cell(s), {tasks} task(s) each "
                   f"({', '.join(p.cell.short for p in cells)}):")
        out.append(sbatch_script(profile, tasks, len(cells), logs_folder(output_dir), f"semiseg-{exp}"))
    return "\n".join(out)


# --- SLURM state -----------------------------------------------------------------------------------------

def read_job(run_dir: Path) -> dict:
    return read_json(run_dir / JOB_FILE)


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout if out.returncode == 0 else ""


def job_states(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """{job id: {state, exit_code, reason}} from one squeue call (live jobs) and one sacct call (the rest)."""
    if not job_ids:
        return {}
    states: dict[str, dict[str, str]] = {}
    wanted = set(job_ids)
    for line in _run(["squeue", "-h", "-r", "-o", "%i|%T|%r"]).splitlines():
        jid, state, reason = (line.split("|") + ["", ""])[:3]
        if jid in wanted:
            states[jid] = {"state": state, "exit_code": "", "reason": reason}
    rest = sorted(wanted - set(states))
    if rest:
        out = _run(["sacct", "-X", "-n", "-P", "-o", "JobID,State,ExitCode,Reason", "-j", ",".join(rest)])
        for line in out.splitlines():
            jid, state, code, reason = (line.split("|") + ["", "", ""])[:4]
            if jid in wanted:
                states[jid] = {"state": state.split()[0] if state else "UNKNOWN", "exit_code": code,
                               "reason": reason}
    return states


def refresh(planned: list[PlannedCell], record: bool = True) -> list[PlannedCell]:
    """Add each cell's SLURM job state; queued/running jobs make their cells 'queued'/'running', and a
    job that ended badly without its run reporting it makes the cell 'failed' with the sacct reason; with
    ``record`` that failure is written into MLflow (the run marked FAILED), else only shown."""
    jobs = {id(p): read_job(p.run_dir) for p in planned}
    states = job_states([j["job_id"] for j in jobs.values() if j])
    for p in planned:
        job = jobs[id(p)]
        if not job:
            continue
        p.job = {**job, **states.get(job["job_id"], {"state": "UNKNOWN", "exit_code": "", "reason": ""})}
        state = p.job["state"]
        if state in ACTIVE_STATES:
            if p.state != "finished":
                p.state = "queued" if state in ("PENDING", "REQUEUED", "REQUEUE_HOLD") else "running"
        elif state not in ("COMPLETED", "UNKNOWN") and p.state in ("new", "interrupted") \
                and p.status in ("", "RUNNING"):
            p.error = (f"SLURM job {job['job_id']} ended {state} (exit code {p.job['exit_code']}"
                       + (f", reason {p.job['reason']}" if p.job["reason"] not in ("", "None") else "")
                       + ") without its run reporting it")
            cell_record = CellRecord(p.cell.config)
            tags = {**cell_tags(p.cell.config), "semiseg.exp": cell_record.experiment, **job_tags(job)}
            if record:
                p.run_id = record_failure(cell_record.tracking_uri, cell_record.experiment, p.error, tags, p.run_id)
                p.status = "FAILED"
            p.state = "failed"
    return planned


def job_tags(job: dict) -> dict[str, str]:
    return {f"semiseg.slurm.{k}": str(job[k]) for k in ("job_id", "array_job_id", "array_index", "log")
            if k in job}


# --- submission -------------------------------------------------------------------------------------------

def submit(todo: list[PlannedCell], profile: dict, output_dir: Path, exp: str, log=print) -> int:
    """Submit ``todo`` as one job array per shape; cells claimed elsewhere or with a live job are skipped."""
    folder = logs_folder(output_dir)
    submitted = 0
    for tasks, cells in _groups(todo).items():
        mine = [p for p in cells if claim(p)]
        try:  # under the cells' locks: a job another launch submitted since our plan is seen here
            jobs = {p.cell.hash: read_job(p.run_dir) for p in mine}
            live = job_states([job["job_id"] for job in jobs.values() if job])
            fresh = []
            for p in mine:
                job = jobs[p.cell.hash]
                if job and live.get(job["job_id"], {}).get("state") in ACTIVE_STATES:
                    log(f"  skip {p.cell.short}: SLURM job {job['job_id']} is already "
                        f"{live[job['job_id']]['state'].lower()}")
                    continue
                fresh.append(p)
            for p in [p for p in cells if p not in mine]:
                log(f"  skip {p.cell.short}: {skip_reason(p)}")
            if not fresh:
                continue
            ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=profile["max_requeues"],
                                        python=_python(profile))
            ex.update_parameters(**sbatch_params(profile, tasks, f"semiseg-{exp}"))
            for p in fresh:
                save_config(p.cell.config, p.run_dir / "config.yaml")
            with ex.batch():
                jobs = [ex.submit(CellJob(str(p.run_dir / "config.yaml"), exp, profile["max_requeues"]))
                        for p in fresh]
            for index, (p, job) in enumerate(zip(fresh, jobs)):
                array_id = job.job_id.split("_")[0]
                record = {"job_id": job.job_id, "array_job_id": array_id, "array_index": index,
                          "log": str(job.paths.stdout), "submitted": time.time(), "tasks": tasks}
                write_json(p.run_dir / JOB_FILE, record)
            log(f"submitted job array {jobs[0].job_id.split('_')[0]}: {len(fresh)} cell(s), {tasks} task(s) "
                f"each, at most {profile['array_parallelism']} at once; logs in {folder.parent}")
            submitted += len(fresh)
        finally:
            for p in mine:
                release(p.run_dir)
    return submitted


# --- inside the job ----------------------------------------------------------------------------------------

def rendezvous_env(env: submitit.JobEnvironment) -> dict[str, str]:
    """Standard torch.distributed variables for this task; the port derives from the job id (no collisions
    between jobs sharing a node)."""
    return {"RANK": str(env.global_rank), "LOCAL_RANK": str(env.local_rank), "WORLD_SIZE": str(env.num_tasks),
            "MASTER_ADDR": env.hostnames[0], "MASTER_PORT": str(20000 + int(env.raw_job_id) % 40000)}


class CellJob(_Checkpointable):
    """One cell in a SLURM task: runs ``python -m semiseg.train`` and handles requeue and failure reporting."""

    def __init__(self, config: str, exp: str, max_requeues: int) -> None:
        self.config, self.exp, self.max_requeues = config, exp, max_requeues
        self._proc: subprocess.Popen | None = None
        self._code: int | None = None

    def __getstate__(self) -> dict:
        return {"config": self.config, "exp": self.exp, "max_requeues": self.max_requeues}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __call__(self) -> dict:
        env = submitit.JobEnvironment()
        requeues = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        job = {"job_id": env.job_id, "array_job_id": env.array_job_id or env.raw_job_id,
               "array_index": env.array_task_id or "", "log": str(env.paths.stdout)}
        tags = {**job_tags(job), "semiseg.slurm.requeues": requeues, "semiseg.exp": self.exp,
                "semiseg.backend": "slurm"}
        cmd = [sys.executable, "-m", "semiseg.train", "--config", self.config]
        for key, value in tags.items():
            cmd += ["--tag", f"{key}={value}"]
        print(f"cell {self.config} on {env} (requeued {requeues} time(s))", flush=True)
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env={**os.environ, **rendezvous_env(env)})
        tail: deque[str] = deque(maxlen=40)
        threading.Thread(target=self._pump, args=(tail,), daemon=True).start()
        while self._code is None:  # a plain poll: the requeue signal handler runs in this thread
            time.sleep(0.2)
        if self._code == 0:
            return {"config": self.config, "job_id": env.job_id}
        if self._code == EXIT_INTERRUPTED:
            time.sleep(10)  # stopped by SLURM's signal: our own USR2 handler is about to requeue and exit
            raise RuntimeError("training was stopped by a signal; run the grid again to resume it")
        error = _error_line(list(tail)) or f"training exited with code {self._code}"
        if env.global_rank == 0:
            self._report_failure(error, tags)
        raise RuntimeError(error)

    def _pump(self, tail: deque) -> None:
        for line in self._proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            tail.append(line.rstrip("\n"))
        self._code = self._proc.wait()

    def _report_failure(self, error: str, tags: dict) -> None:
        """Record a failure the training process could not record (it died before or without its run)."""
        cfg = load_config(self.config)
        record = CellRecord(cfg)
        status = record.recorded_status()
        if status in ENDED:
            return  # the run reported itself
        record_failure(record.tracking_uri, record.experiment, error, {**cell_tags(cfg), **tags},
                       record.recorded_run_id() if status else None)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission | None:
        """SLURM's signal: let the trainer checkpoint and stop, then requeue (unless the cap is reached)."""
        if self._proc is not None and self._code is None:
            self._proc.send_signal(signal.SIGUSR2)  # idempotent: the trainer may have the signal already
            deadline = time.time() + 600
            while self._code is None and time.time() < deadline:
                time.sleep(0.2)
        requeues = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
        if self._code == 0:
            return None  # it finished meanwhile
        if requeues >= self.max_requeues:
            print(f"not requeued: {requeues} requeue(s) reached max_requeues={self.max_requeues}; the run stays "
                  f"resumable (run the grid again)", flush=True)
            return None
        return submitit.helpers.DelayedSubmission(CellJob(self.config, self.exp, self.max_requeues))


def _error_line(lines: list[str]) -> str:
    """The most telling line of a failed run's output: its ``error:`` line, else the traceback's last line."""
    for line in reversed(lines):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    for line in reversed(lines):
        if line.strip() and not line.startswith(" "):
            return line.strip()
    return ""


def check_available() -> None:
    if shutil.which("sbatch") is None:
        raise UserError("--backend slurm: sbatch is not on PATH (is this a SLURM login node? is SLURM_CONF set?)")
