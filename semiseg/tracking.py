"""Every MLflow call of the project lives here.

A training run is one MLflow run, tagged with its cell identity (``semiseg.*`` tags). The
orchestration and the reports read runs back through :func:`search_cells` and :func:`runs_frame`.
A tuning study is a parent run; its trials are training runs nested under it with :data:`PARENT_TAG`.
"""

from __future__ import annotations

import errno
import functools
import getpass
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from semiseg.runfiles import fault_point, waiting_lock

TAG_PREFIX = "semiseg."
_SQLITE = "sqlite:///"
#: Tags identifying a cell; reports and the planner rely on these names.
CELL_TAGS = ("exp", "method", "dataset", "split", "backbone", "seed", "hash", "n_labeled", "recipe")
#: Tag naming the model whose mIoU is the run's ``val/miou``/``best_miou`` ('student', or 'ema' for V2 methods).
REPORTED_MODEL_TAG = TAG_PREFIX + "reported_model"
#: Tag holding :func:`semiseg.config.recipe_hash`: runs of one recipe over several seeds share it.
RECIPE_TAG = TAG_PREFIX + "recipe"
#: MLflow's own tag nesting a run under a parent run (the UI lists trials under their study).
PARENT_TAG = "mlflow.parentRunId"
#: MLflow's tag for the description shown on an experiment's (or run's) page.
NOTE_TAG = "mlflow.note.content"
#: MLflow status → semiseg cell state.
STATE_OF_STATUS = {"FINISHED": "finished", "FAILED": "failed", "RUNNING": "interrupted",
                   "KILLED": "interrupted", "SCHEDULED": "interrupted"}


_READY: set[str] = set()


def _client(uri: str):
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # after the import, which configures it; no chatter
    # a database error also reaches the caller as an exception, reported there in one line: no logged traceback
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

    uri = resolve_uri(uri)
    db = sqlite_file(uri)
    if db is None or uri in _READY:
        return MlflowClient(tracking_uri=uri)
    # MLflow creates and migrates a new sqlite store when a client first opens it; two processes doing it at
    # once (two launches, parallel cells) corrupt the migration, so the first open is serialised by a file lock.
    with waiting_lock(db.with_name(db.name + ".lock")):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    _READY.add(uri)
    return client


def sqlite_file(uri: str) -> Path | None:
    """The database file named by a ``sqlite:///`` URI (as written: relative stays relative); None for other stores."""
    return Path(uri[len(_SQLITE):]) if uri.startswith(_SQLITE) else None


def resolve_uri(uri: str) -> str:
    """Make a relative ``sqlite:///file.db`` URI absolute so every process (SLURM, Ray) hits the same file."""
    db = sqlite_file(uri)
    return _SQLITE + str(db.resolve()) if db is not None and not db.is_absolute() else uri


def _artifact_root(uri: str) -> str | None:
    """Absolute artifact folder beside a sqlite store (MLflow's default is relative to the cwd)."""
    db = sqlite_file(resolve_uri(uri))
    return (db.parent / "mlruns").as_uri() if db is not None else None


def store_absent(uri: str) -> bool:
    """True for a sqlite store whose file does not exist yet: reading it must not create it."""
    db = sqlite_file(resolve_uri(uri))
    return db is not None and not db.is_file()


def get_or_create_experiment(uri: str, name: str, description: str = "") -> str:
    """Return the id of experiment ``name``, creating it (with an absolute artifact root) if needed; a
    ``description`` is shown on the experiment's page of the MLflow UI."""
    if not name.strip():
        from semiseg.errors import ConfigError

        raise ConfigError("runtime.experiment is empty; give the MLflow experiment a name, e.g. demo")
    client = _client(uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if description and exp.tags.get(NOTE_TAG) != description:
            client.set_experiment_tag(exp.experiment_id, NOTE_TAG, description)
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_root(uri),
                                        tags={NOTE_TAG: description} if description else None)
    except Exception:  # another process created it between the two calls
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def cell_tags(cfg) -> dict[str, Any]:
    """The identity tags of the run of config ``cfg`` (a :class:`semiseg.config.RunConfig`)."""
    from semiseg.config import config_hash, recipe_hash

    return {"semiseg.method": cfg.method, "semiseg.dataset": cfg.data.dataset, "semiseg.split": cfg.data.split,
            "semiseg.backbone": cfg.model.backbone, "semiseg.seed": cfg.seed, "semiseg.hash": config_hash(cfg),
            RECIPE_TAG: recipe_hash(cfg)}


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                         timeout=10)
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.lru_cache(maxsize=1)
def checkout() -> tuple[str, bool] | None:
    """(commit, dirty) of the git checkout this package runs from; None when it runs from an installation (a
    wheel in site-packages, even one inside another repository's folder) or git is missing. Dirty = tracked
    files differ from the commit."""
    try:
        top = _git("rev-parse", "--show-toplevel")
        if not top or (Path(top) / "semiseg" / Path(__file__).name).resolve() != Path(__file__).resolve():
            return None
        commit = _git("rev-parse", "HEAD")
        return (commit, bool(_git("status", "--porcelain", "--untracked-files=no"))) if commit else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str:
    """The project's current git commit, or 'unknown' outside a checkout."""
    found = checkout()
    return found[0] if found else "unknown"


@functools.lru_cache(maxsize=1)
def source_tags() -> dict[str, str]:
    """MLflow's standard tags of a new run: entry point, source type, user, the code's git commit (a checkout
    only) with a dirty flag (``semiseg.git_dirty``), and the package version."""
    from semiseg import __version__

    started = getattr(sys.modules.get("__main__"), "__spec__", None)
    tags = {"mlflow.source.name": started.name if started is not None else Path(sys.argv[0] or "python").name,
            "mlflow.source.type": "LOCAL", "semiseg.version": __version__}
    try:
        tags["mlflow.user"] = getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database (some containers)
        pass
    found = checkout()
    if found:
        tags.update({"mlflow.source.git.commit": found[0], "semiseg.git_dirty": str(found[1]).lower()})
    return tags


#: errno values of a failed write that a relaunch may get past (space freed, permissions fixed)
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
#: Tag holding the token a run folder's ``run.json`` names before its run exists (see RunTracker.create).
TOKEN_TAG = TAG_PREFIX + "run_token"


def is_storage_error(exc: BaseException) -> bool:
    """True for a write that failed for lack of space or permission (transient: the run stays resumable)."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def is_tracking_error(exc: BaseException) -> bool:
    """True for an error of the MLflow store itself (its database gone or locked, its server unreachable)."""
    return type(exc).__module__.split(".")[0] in ("mlflow", "sqlalchemy", "requests", "urllib3")


def short_error(exc: BaseException) -> str:
    """One line of an error's text: the first line naming an error (a database's own), else the first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    return next((line for line in lines if "Error" in line), lines[0])[:200]


def run_name(cfg) -> str:
    """The run's name in the MLflow UI: method · dataset · split · backbone · seed (the hash stays a tag)."""
    return f"{cfg.method} · {cfg.data.dataset} · {cfg.data.split} · {cfg.model.backbone} · s{cfg.seed}"


class RunTracker:
    """Logs one training run into MLflow (a new run, or an existing run reopened)."""

    def __init__(self, uri: str, experiment: str) -> None:
        self.uri = uri
        self.experiment = experiment
        self.client = _client(uri)
        self.run_id: str | None = None

    def get(self, run_id: str):
        """The MLflow run ``run_id`` of this tracker's experiment, or None when the store has no such run."""
        try:
            run = self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - MlflowException for an unknown id
            return None
        exp = self.client.get_experiment(run.info.experiment_id)
        return run if exp is not None and exp.name == self.experiment else None

    def find(self, tag: str, value: str):
        """The newest run of the experiment whose tag ``tag`` is ``value``, or None."""
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            return None
        runs = self.client.search_runs([exp.experiment_id], filter_string=f"tags.`{tag}` = '{value}'",
                                       max_results=1, order_by=["attributes.start_time DESC"])
        return runs[0] if runs else None

    def create(self, run_name: str, tags: dict[str, Any], status: str = "RUNNING") -> str:
        """Create a run with all its tags in one call (a run is never seen without its cell identity), MLflow's
        standard source tags included (:func:`source_tags`)."""
        exp_id = get_or_create_experiment(self.uri, self.experiment)
        tags = {**source_tags(), **tags}
        run = self.client.create_run(exp_id, run_name=run_name, tags={k: str(v)[:5000] for k, v in tags.items()})
        self.run_id = run.info.run_id
        fault_point("run_created")
        return self.run_id

    def reopen(self, run_id: str, tags: dict[str, Any]) -> str:
        """Mark an existing (interrupted or failed) run RUNNING again and refresh its tags."""
        self.run_id = run_id
        self.client.update_run(run_id, status="RUNNING")
        self.set_tags(tags)
        return run_id

    def attach(self, run_id: str) -> "RunTracker":
        """Log into an existing run without changing its status (e.g. to close a run left RUNNING)."""
        self.run_id = run_id
        return self

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params; values already logged (a resumed run) are skipped, as MLflow forbids changing them."""
        from mlflow.entities import Param

        known = self.client.get_run(self.run_id).data.params
        items = [Param(k, str(v)[:6000]) for k, v in params.items() if k not in known]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log(self, metrics: dict[str, float], step: int, tags: dict[str, Any] | None = None) -> None:
        """Metrics of one step (and tags) in one ``log_batch``: the store has all of them or none."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
                              tags=[RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()])
        fault_point("metrics_logged")

    def logged_steps(self, key: str) -> set[int]:
        """The steps at which metric ``key`` is in the run."""
        return {m.step for m in self.client.get_metric_history(self.run_id, key)}

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, status: str = "FINISHED") -> None:
        """Mark the run FINISHED, FAILED or KILLED (KILLED = interrupted, resumable)."""
        fault_point("final_status")
        self.client.set_terminated(self.run_id, status=status)


def run_status(uri: str, run_id: str) -> str | None:
    """The MLflow status of run ``run_id`` (RUNNING, FINISHED, FAILED, KILLED), None if it does not exist."""
    if store_absent(uri):
        return None
    try:
        return _client(uri).get_run(run_id).info.status
    except Exception:  # noqa: BLE001 - MLflow raises MlflowException for an unknown id
        return None


def record_failure(uri: str, experiment: str, error: str, tags: dict[str, Any], run_id: str | None = None) -> str:
    """Mark run ``run_id`` FAILED with ``semiseg.error`` = ``error``; without a run id, create the FAILED run.

    For failures the training process could not report itself: it died before creating its run (bad data),
    or it was killed (out of memory, node failure) while its run said RUNNING.
    """
    tracker = RunTracker(uri, experiment)
    tags = {**tags, TAG_PREFIX + "error": error}
    if run_id is None:
        tracker.create(str(tags.get("mlflow.runName") or tags.get(TAG_PREFIX + "hash", ""))[:250], tags)
    else:
        tracker.attach(run_id).set_tags(tags)
    tracker.finish("FAILED")
    return tracker.run_id


@dataclass
class CellRun:
    """The MLflow view of one run of a cell."""

    run_id: str
    cell_hash: str
    status: str
    start_time: int
    tags: dict[str, str]
    metrics: dict[str, float]
    end_time: int = 0
    params: dict[str, str] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        """Wall-clock hours from start to end (0 while unfinished)."""
        return max(self.end_time - self.start_time, 0) / 3.6e6 if self.end_time else 0.0

    @property
    def state(self) -> str:
        return STATE_OF_STATUS.get(self.status, "failed")


def search_cells(uri: str, experiment: str, hashes: Iterable[str] | None = None) -> list[CellRun]:
    """All runs of ``experiment`` (optionally only those with the given cell hashes), newest first."""
    if store_absent(uri):
        return []
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    wanted = set(hashes) if hashes is not None else None
    out: list[CellRun] = []
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=5000, page_token=token,
                                  order_by=["attributes.start_time DESC"])
        for run in page:
            cell = run.data.tags.get(TAG_PREFIX + "hash", "")
            if wanted is None or cell in wanted:
                out.append(CellRun(run.info.run_id, cell, run.info.status, run.info.start_time or 0,
                                   dict(run.data.tags), dict(run.data.metrics), run.info.end_time or 0,
                                   dict(run.data.params)))
        token = page.token
        if not token:
            return out


def child_runs(uri: str, experiment: str, parent_run_id: str) -> list[CellRun]:
    """The runs nested under ``parent_run_id`` (a study's trials), newest first."""
    return [run for run in search_cells(uri, experiment) if run.tags.get(PARENT_TAG) == parent_run_id]


def find_tagged_run(uri: str, experiment: str, tag: str, value: str) -> CellRun | None:
    """The newest run of ``experiment`` whose tag ``tag`` equals ``value`` and that has no parent."""
    for run in search_cells(uri, experiment):
        if run.tags.get(tag) == value and PARENT_TAG not in run.tags:
            return run
    return None


def list_experiments(uri: str) -> list[str]:
    """Names of the experiments in the store."""
    if store_absent(uri):
        return []
    return [exp.name for exp in _client(uri).search_experiments()]


def run_tags(uri: str, run_id: str) -> dict[str, str]:
    """The tags of run ``run_id`` ({} when the store or the run does not exist)."""
    if store_absent(uri):
        return {}
    try:
        return dict(_client(uri).get_run(run_id).data.tags)
    except Exception:  # noqa: BLE001 - MlflowException for an unknown id
        return {}


def metric_history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric of one run."""
    return [(m.step, m.value) for m in _client(uri).get_metric_history(run_id, key)]


#: Run params copied into :func:`runs_frame` (resources, for the cost of a grid; the recipe values a reference run
#: of the official logs is matched on, :data:`semiseg.reference_match.MATCHED_KEYS`).
FRAME_PARAMS = ("train.gpus", "derived.device", "derived.amp", "derived.hardware", "data.crop_size", "train.epochs",
                "loss.conf_thresh", "optim.lr")
#: Leading columns of :func:`runs_frame`; the ``metrics.<name>`` columns follow, sorted by name.
FRAME_COLUMNS = ("run_id", "status", "state", "start_time", "end_time", *CELL_TAGS, *FRAME_PARAMS)


def runs_frame(uri: str, experiment: str, sql: bool = True):
    """One row per active run of ``experiment``, newest first: run_id, status, state, start/end time (ms), the cell
    tags, the :data:`FRAME_PARAMS` params and every final metric (``metrics.<name>``).

    Two read paths give the same frame. A store in a SQL database (``sqlite:///``, ``postgresql://``, ``mysql://``,
    ``mssql://``) is read with a few SQL queries fetching only these values (:func:`sql_runs`); the MLflow client
    loads every param and tag of every run (10,000 runs of 120 params: 1.1 s against 42 s). Any other store (an
    ``http(s)://`` tracking server, a file store), ``sql=False``, or a database :func:`sql_runs` cannot vouch for is
    read through the client (:func:`search_cells`).
    """
    import pandas as pd

    runs = sql_runs(uri, experiment) if sql else None
    if runs is None:
        runs = search_cells(uri, experiment)
    rows = []
    for run in runs:
        row = {"run_id": run.run_id, "status": run.status, "state": run.state, "start_time": run.start_time,
               "end_time": run.end_time}
        row.update({name: run.tags.get(TAG_PREFIX + name) for name in CELL_TAGS})
        row.update({name: run.params.get(name) for name in FRAME_PARAMS})
        row.update({f"metrics.{k}": v for k, v in run.metrics.items()})
        rows.append(row)
    metrics = sorted({key for run in runs for key in run.metrics})
    return pd.DataFrame(rows, columns=[*FRAME_COLUMNS, *(f"metrics.{k}" for k in metrics)])


def _sql_engine(uri: str):
    """A read-only SQLAlchemy engine on the database behind ``uri``; None when it is no SQL database MLflow serves
    (http server, file store), a sqlite file that does not exist yet, or MLflow workspaces are on (the client scopes
    experiments to the active workspace)."""
    import sqlite3
    from urllib.parse import quote, urlsplit

    import sqlalchemy

    try:  # MLflow internals (workspaces are recent): an MLflow without them is read through the client
        from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES
        from mlflow.store.db.db_types import DATABASE_ENGINES, SQLITE
    except ImportError:
        return None

    uri = resolve_uri(uri)
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme not in DATABASE_ENGINES or MLFLOW_ENABLE_WORKSPACES.get():
        return None
    if scheme != SQLITE:
        try:
            return sqlalchemy.create_engine(uri)
        except (ImportError, sqlalchemy.exc.SQLAlchemyError):  # no driver, bad URL: the client reports it
            return None
    db = sqlite_file(uri)
    if db is None or not db.is_file():
        return None
    return sqlalchemy.create_engine("sqlite://", poolclass=sqlalchemy.pool.NullPool,
                                    creator=lambda: sqlite3.connect(f"file:{quote(str(db))}?mode=ro", uri=True))


def sql_runs(uri: str, experiment: str) -> list[CellRun] | None:
    """The runs :func:`search_cells` returns (active runs, newest first), read straight from MLflow's SQL tables
    (experiments, runs, tags, params, latest_metrics, through MLflow's own table models) with only the cell tags, the
    :data:`FRAME_PARAMS` params and the latest metrics. None, to read through the client instead, when ``uri`` is
    no SQL database (:func:`_sql_engine`), the database's schema revision is not the one the installed MLflow
    writes (its tables may differ), or a query fails."""
    engine = _sql_engine(uri)
    if engine is None:
        return None
    from mlflow.entities import LifecycleStage, ViewType
    try:  # MLflow's private table models and schema head: another MLflow version may lack them
        from mlflow.store.db.utils import _get_latest_schema_revision
        from mlflow.store.tracking.dbmodels.models import SqlExperiment, SqlLatestMetric, SqlParam, SqlRun, SqlTag
    except ImportError:
        return None
    from sqlalchemy import select, text
    from sqlalchemy.exc import SQLAlchemyError

    log = logging.getLogger(__name__)
    try:
        with engine.connect() as db:
            revision = db.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            head = _get_latest_schema_revision()
            if revision != [head]:
                log.warning("%s has schema revision %s, the installed MLflow writes %s: reading it through the "
                            "MLflow client", uri, revision, head)
                return None
            exp_ids = db.execute(select(SqlExperiment.experiment_id).where(SqlExperiment.name == experiment)).all()
            if len(exp_ids) != 1:  # none: no runs, as search_cells; several (workspaces): the client decides
                return None if exp_ids else []
            # search_runs' default view (ACTIVE_ONLY: deleted runs left out) and its order for start_time DESC
            active = (SqlRun.experiment_id == exp_ids[0][0],
                      SqlRun.lifecycle_stage.in_(LifecycleStage.view_type_to_stages(ViewType.ACTIVE_ONLY)))
            query = select(SqlRun.run_uuid, SqlRun.status, SqlRun.start_time, SqlRun.end_time).where(*active)
            runs = {uuid: CellRun(uuid, "", status, start or 0, {}, {}, end or 0)
                    for uuid, status, start, end in db.execute(query.order_by(SqlRun.start_time.desc(),
                                                                             SqlRun.run_uuid))}

            def fill(field: str, model, keys: Iterable[str] | None = None) -> None:
                nan = [model.is_nan] if model is SqlLatestMetric else []
                query = select(model.run_uuid, model.key, model.value, *nan).where(
                    model.run_uuid.in_(select(SqlRun.run_uuid).where(*active)))
                for uuid, key, value, *is_nan in db.execute(query if keys is None else
                                                            query.where(model.key.in_(list(keys)))):
                    if uuid in runs:  # else a run created after the runs query
                        getattr(runs[uuid], field)[key] = float("nan") if any(is_nan) else value

            fill("tags", SqlTag, [TAG_PREFIX + name for name in CELL_TAGS])
            fill("params", SqlParam, FRAME_PARAMS)
            fill("metrics", SqlLatestMetric)
    except SQLAlchemyError as exc:
        log.warning("reading %s with SQL failed (%s): reading it through the MLflow client", uri, exc)
        return None
    finally:
        engine.dispose()
    for run in runs.values():
        run.cell_hash = run.tags.get(TAG_PREFIX + "hash", "")
    return list(runs.values())


def log_report(uri: str, experiment: str, run_name: str, files: Iterable[str | Path],
               tags: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> str:
    """Log a report (tables, plots) as artifacts of a new FINISHED run of ``experiment``; return its id."""
    tracker = RunTracker(uri, experiment)
    tracker.create(run_name, tags or {})
    if params:
        tracker.log_params(params)
    for path in files:
        tracker.log_artifact(path)
    tracker.finish()
    return tracker.run_id


def log_runs_batch(uri: str, experiment: str, runs: Iterable[dict[str, Any]]) -> int:
    """Write many runs fast (benchmarks, imports, tests): each dict has ``name``, ``tags``, ``params``, ``metrics``
    (name → value, or a list of values = steps 0, 1, ...), optional ``status`` (default FINISHED; RUNNING leaves
    it open) and ``start_time``/``end_time`` (ms); one log_batch per run. Returns the number of runs written."""
    from mlflow.entities import Metric, Param, RunTag

    client = _client(uri)
    exp_id = get_or_create_experiment(uri, experiment)
    count = 0
    for spec in runs:
        start = int(spec.get("start_time", time.time() * 1000))
        run = client.create_run(exp_id, start_time=start, run_name=spec.get("name"))
        metrics = [Metric(k, float(v), start, step) for k, values in spec.get("metrics", {}).items()
                   for step, v in enumerate(values if isinstance(values, (list, tuple)) else [values])]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param(k, str(v)) for k, v in spec.get("params", {}).items()],
                         tags=[RunTag(k, str(v)) for k, v in spec.get("tags", {}).items()])
        if spec.get("status", "FINISHED") != "RUNNING":
            client.set_terminated(run.info.run_id, status=spec.get("status", "FINISHED"),
                                  end_time=int(spec.get("end_time", start)))
        count += 1
    return count


def list_artifacts(uri: str, run_id: str) -> list[str]:
    """Paths of the top-level artifacts of a run."""
    return [info.path for info in _client(uri).list_artifacts(run_id)]


#: The MLflow experiment holding the runs imported from official training logs (``semiseg reference import``).
REFERENCE_EXPERIMENT = "semiseg-reference"
#: Tag marking a reference run (value ``official``), and the prefix of its other reference tags.
REFERENCE_TAG = TAG_PREFIX + "reference"


def log_reference_run(uri: str, name: str, tags: dict[str, Any], params: dict[str, Any],
                      curves: dict[str, list[tuple[int, float]]], final: dict[str, tuple[int, float]],
                      start_ms: int, end_ms: int) -> str | None:
    """Record one official log as a FINISHED run of :data:`REFERENCE_EXPERIMENT` (curves: metric → (epoch, value),
    logged at step = epoch; ``final``: metric → (step, value)). A log already imported (same ``digest`` tag) is left
    alone: returns None."""
    from mlflow.entities import Metric, Param

    client = _client(uri)
    exp_id = get_or_create_experiment(uri, REFERENCE_EXPERIMENT, "Runs read from the official repositories' "
                                      "training logs: per-epoch val mIoU, the recipe and its cost.")
    digest = tags[REFERENCE_TAG + ".digest"]
    if client.search_runs([exp_id], filter_string=f"tags.`{REFERENCE_TAG}.digest` = '{digest}'", max_results=1):
        return None
    run = client.create_run(exp_id, start_time=start_ms, run_name=name,
                            tags={k: str(v)[:5000] for k, v in tags.items()})
    metrics = [Metric(key, float(v), start_ms, int(step)) for key, points in curves.items() for step, v in points]
    metrics += [Metric(key, float(v), end_ms, int(step)) for key, (step, v) in final.items()]
    items = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(metrics), 1000):  # MLflow's log_batch limits: 1000 metrics, 100 params
        client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000])
    for start in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=items[start:start + 100])
    client.set_terminated(run.info.run_id, status="FINISHED", end_time=end_ms)
    return run.info.run_id


def reference_runs(uri: str) -> list[CellRun]:
    """Every reference run (with tags, params and final metrics), newest first; [] without references."""
    return [run for run in search_cells(uri, REFERENCE_EXPERIMENT) if run.tags.get(REFERENCE_TAG) == "official"]
