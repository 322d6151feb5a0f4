"""The one use of submitit's private sbatch rendering: submitit has no public API for the sbatch file's text.

:func:`render` returns exactly the file ``submitit.SlurmExecutor`` writes for a job array (its private
``_make_sbatch_string`` running its ``submitit.core._submit`` module); tests/test_sbatch.py pins the text, so a
submitit upgrade that changes it fails there instead of on a cluster.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

#: the module each task of submitit's own sbatch files runs
SUBMIT_MODULE = "submitit.core._submit"


def render(python: str, folder: Path, count: int, params: dict[str, Any]) -> str:
    """The sbatch file of an array of ``count`` tasks run by ``python`` (a shell word), logs and pickles in
    ``folder``, with ``params`` the ``submitit.SlurmExecutor`` parameters (``job_name``, ``time``, ...)."""
    from submitit.slurm.slurm import _make_sbatch_string

    command = " ".join([python, "-u -m", SUBMIT_MODULE, shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=folder, map_count=count, **params)
