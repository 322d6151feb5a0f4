"""Create a workspace: the folder where your experiments, cluster profiles, split lists, runs and MLflow store
live (see semiseg.workspace). Existing files are left as they are.

  experiments/example.yaml    an experiment inheriting the built-in demo grid: run it with --exp example
  clusters/<cluster>.yaml     a SLURM cluster profile to edit (from the built-in example): --cluster <cluster>
  splits/                     split lists (`splits import` writes here)

examples:
  {prog}                       # the current folder
  {prog} ~/semiseg --cluster mycluster
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semiseg.launch.slurm import CLUSTERS_DIR
from semiseg.cli import prog, run_cli
from semiseg.errors import UserError
from semiseg.workspace import home

EXAMPLE_EXPERIMENT = """\
# Your experiment: the built-in demo grid with your changes. Every key of `semiseg train --help-config`
# may go under defaults; `inherit` also takes the built-in paper grids (pascal_all, cityscapes_all, ...).
description: the demo grid, one seed, UniMatch and the supervised baseline
inherit: demo
grid:
  method: [supervised, unimatch]
  seed: [0]
"""


def build_parser() -> argparse.ArgumentParser:
    name = prog("init", "semiseg.launch.init_workspace")
    p = argparse.ArgumentParser(prog=name, description=__doc__.format(prog=name),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", help="the workspace folder (created if missing; default: --workspace, "
                                             "$SEMISEG_HOME or the current folder), e.g. ~/semiseg")
    p.add_argument("--cluster", default="mycluster", help="name of the cluster profile to create, e.g. --cluster "
                                                          "hpc (default mycluster)")
    return p


def create(folder: Path, cluster: str) -> list[tuple[Path, bool]]:
    """Make the workspace's folders and starter files; returns (file, written) pairs (False: it existed)."""
    if not cluster or Path(cluster).name != cluster or cluster.startswith("."):
        raise UserError(f"--cluster {cluster!r} must be a plain file name such as mycluster")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder")
    for sub in ("experiments", "clusters", "splits"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    profile = (CLUSTERS_DIR / "example_gpu.yaml").read_text().splitlines(keepends=True)
    profile[0] = (f"description: cluster profile {cluster}; edit it to match your cluster "
                  f"(used with --cluster {cluster})\n")
    files = {folder / "experiments" / "example.yaml": EXAMPLE_EXPERIMENT,
             folder / "clusters" / f"{cluster}.yaml": "".join(profile)}
    done = []
    for path, text in files.items():
        written = not path.exists()
        if written:
            path.write_text(text)
        done.append((path, written))
    return done


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folder = Path(args.folder).expanduser() if args.folder else home()
    for path, written in create(folder, args.cluster):
        print(f"{'wrote' if written else 'kept  '} {path}")
    grid = prog("grid", "semiseg.launch.run_grid")
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    print(f"workspace ready: {folder.resolve()}\nnext: {where}{grid} --exp example --dry-run")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
