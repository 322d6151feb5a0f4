"""launch/sbatch.py: the sbatch text rendered with submitit's private helper, pinned to the exact file."""

from __future__ import annotations

from pathlib import Path

from semiseg.launch import slurm
from semiseg.launch.sbatch import render

PARAMS = {"job_name": "semiseg-demo", "time": 90, "nodes": 1, "ntasks_per_node": 2, "cpus_per_task": 4,
          "mem": "16GB", "signal_delay_s": 120, "array_parallelism": 2, "stderr_to_stdout": True,
          "additional_parameters": {"requeue": True, "account": "my_project"}, "srun_args": ["--kill-on-bad-exit=1"],
          "setup": ["module load cuda/12.4"], "gpus_per_node": 2, "partition": "gpu"}

PINNED = """\
#!/bin/bash

# Parameters
#SBATCH --account=my_project
#SBATCH --array=0-2%2
#SBATCH --cpus-per-task=4
#SBATCH --gpus-per-node=2
#SBATCH --job-name=semiseg-demo
#SBATCH --mem=16GB
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=2
#SBATCH --open-mode=append
#SBATCH --output=/runs/_slurm/%A_%a/%A_%a_0_log.out
#SBATCH --partition=gpu
#SBATCH --requeue
#SBATCH --signal=USR2@120
#SBATCH --time=90
#SBATCH --wckey=submitit

# setup
module load cuda/12.4

# command
export SUBMITIT_EXECUTOR=slurm
srun --unbuffered --output /runs/_slurm/%A_%a/%A_%a_%t_log.out --kill-on-bad-exit=1 /opt/py/bin/python -u -m \
submitit.core._submit /runs/_slurm/%j
"""


def test_render_is_the_pinned_file():
    assert render("/opt/py/bin/python", Path("/runs/_slurm/%j"), 3, PARAMS) == PINNED


def test_the_slurm_backend_renders_the_same_text(tmp_path):
    profile = slurm.load_profile("example_gpu")
    params = slurm.sbatch_params(profile, 2, "semiseg-demo")
    assert slurm.sbatch_script(profile, 2, 3, tmp_path, "semiseg-demo") == \
        render(slurm._python(profile), tmp_path, 3, params)
