"""The user's workspace: the folder holding their experiments, cluster profiles, split lists, data and runs.

The workspace is ``$SEMISEG_HOME`` when set, else the current folder (``semiseg --workspace DIR`` sets
``SEMISEG_HOME`` for the command and the processes it starts). Its layout::

    experiments/   experiment YAMLs, searched before the built-in grids (tune writes its best values here)
    clusters/      SLURM cluster profiles, searched before the built-in ones
    splits/        split lists (``semiseg splits import`` writes here)
    runs/          run folders (checkpoints, logs)
    data/          datasets
    mlflow.db      the default MLflow store (``MLFLOW_TRACKING_URI`` or ``--tracking-uri`` name another)

Nothing is ever written inside the installed package: every default output path comes from here.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "SEMISEG_HOME"
#: MLflow's own variable for the tracking URI; honoured between an explicit option and the default.
TRACKING_VARIABLE = "MLFLOW_TRACKING_URI"


def home() -> Path:
    """The workspace folder (absolute)."""
    return Path(os.environ.get(HOME_VARIABLE) or ".").expanduser().resolve()


def use(folder: str | Path) -> Path:
    """Make ``folder`` the workspace of this process and of the processes it starts."""
    os.environ[HOME_VARIABLE] = str(Path(folder).expanduser().resolve())
    return home()


def path(name: str) -> Path:
    """``name`` in the workspace: as given (relative to the current folder) when ``$SEMISEG_HOME`` is unset, so
    defaults print as typed; else under ``$SEMISEG_HOME``."""
    return home() / name if os.environ.get(HOME_VARIABLE) else Path(name)


def experiments_dir() -> Path:
    return home() / "experiments"


def clusters_dir() -> Path:
    return home() / "clusters"


def splits_dir() -> Path:
    return home() / "splits"


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else a SQLite store ``mlflow.db`` in the workspace."""
    return os.environ.get(TRACKING_VARIABLE) or f"sqlite:///{path('mlflow.db')}"


def find_yaml(name: str, folders: list[Path], skip: Path | None = None) -> Path | None:
    """The first ``<name>.yaml`` in ``folders`` (the workspace's before the built-in one); ``skip`` (a file
    inheriting its own name) is passed over; None when no folder has it."""
    for folder in folders:
        path = folder / f"{name}.yaml"
        if path.is_file() and (skip is None or path.resolve() != skip.resolve()):
            return path
    return None


def yaml_names(folders: list[Path]) -> list[str]:
    """The YAML stems in ``folders``, sorted, without duplicates."""
    return sorted({p.stem for folder in folders if folder.is_dir() for p in folder.glob("*.yaml")})
