"""The ``semiseg`` command: one entry point whose subcommands are the project's command-line tools.

Each subcommand is a module with ``build_parser()`` (an argparse parser) and ``main(argv) -> int``, imported
only when it runs, so ``semiseg --help`` stays fast. Adding a command is one line in :data:`COMMANDS`; its
parser takes ``prog=semiseg.cli.prog("<name>", "<module>")`` so that usage lines and hints read as the user
invoked it (``semiseg <name>``, or ``python -m <module>``). A command of a group (``semiseg data prepare``) is
listed under its group and action: ``"data prepare"``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from semiseg import __version__, cli, workspace
from semiseg.errors import UserError

#: subcommand → (module with build_parser() and main(argv), one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("semiseg.launch.init_workspace", "create a workspace: experiments/, clusters/, splits/"),
    "train": ("semiseg.train", "train one run from a config file (--help-config lists every key)"),
    "grid": ("semiseg.launch.run_grid", "plan and run an experiment's cells (local, Ray or SLURM)"),
    "status": ("semiseg.launch.status", "show the state of an experiment's cells (read-only)"),
    "sync": ("semiseg.launch.sync", "record SLURM jobs that ended without their run reporting it into MLflow"),
    "tune": ("semiseg.launch.tune", "search hyperparameters with Ray Tune; the best values become an experiment"),
    "tables": ("semiseg.reports.make_tables", "result tables and plots from the MLflow store"),
    "splits": ("semiseg.splits", "fetch, import, check or make split lists"),
    "pretext": ("semiseg.pretext", "pretrain the demo's tiny encoder"),
    "ood": ("semiseg.ood", "write or check SemiOVS out-of-distribution pseudo-labels"),
    "data prepare": ("semiseg.data.prepare", "download, verify and convert a dataset (pascal, cityscapes, coco, ...)"),
    "weights": ("semiseg.weights", "list or fetch published encoder weights (model.pretrained names)"),
    "reference": ("semiseg.reference", "import the official training logs as reference runs (curves, costs)"),
}

#: the first word of each command (a group's name for ``semiseg data prepare``)
WORDS = list(dict.fromkeys(name.split()[0] for name in COMMANDS))

EPILOG = f"""commands:
{chr(10).join(f"  {name:12} {summary}" for name, (_, summary) in COMMANDS.items())}

`semiseg COMMAND --help` shows a command's options. The workspace (experiments/, clusters/, splits/, runs/,
data/, mlflow.db) is --workspace, else ${workspace.HOME_VARIABLE}, else the current folder; the MLflow store is
--tracking-uri, else ${workspace.TRACKING_VARIABLE}, else mlflow.db in the workspace. The console scripts
semiseg-train, semiseg-grid, semiseg-status, semiseg-tune and semiseg-tables are aliases of
`semiseg train|grid|status|tune|tables`.

examples:
  semiseg init                         # make the current folder a workspace
  semiseg grid --exp demo --dry-run    # the demo grid's cells and their states
  semiseg grid --exp demo              # train them
  semiseg tables --exp demo            # the result table
"""


def build_parser(prefix: str = "semiseg") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prefix, description="semiseg: semi-supervised semantic segmentation "
                                "experiments: one training engine, named grids, MLflow tracking, paper tables.",
                                epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workspace", metavar="DIR", help=f"the workspace folder (default ${workspace.HOME_VARIABLE}, "
                                                      f"else the current folder), e.g. --workspace ~/semiseg")
    p.add_argument("--version", action="version", version=f"semiseg {__version__}")
    p.add_argument("command", choices=WORDS, metavar="COMMAND", help="one of: " + ", ".join(WORDS))
    p.add_argument("args", nargs=argparse.REMAINDER, help="the command's options (see semiseg COMMAND --help)")
    return p


def invoked_as() -> str:
    """``python -m semiseg`` when started so, else ``semiseg``."""
    started = getattr(sys.modules.get("__main__"), "__spec__", None)
    return "python -m semiseg" if started is not None and started.name == "semiseg.__main__" else "semiseg"


def main(argv: list[str] | None = None) -> int:
    prefix = invoked_as()
    args = build_parser(prefix).parse_args(argv)
    if args.workspace:
        if args.command != "init" and not Path(args.workspace).expanduser().is_dir():
            raise UserError(f"--workspace {args.workspace}: no such folder; create one with "
                            f"{prefix} init {args.workspace}")
        workspace.use(args.workspace)
    name, rest = args.command, args.args
    if name not in COMMANDS:  # a group: its action is the next word
        actions = [n.split()[1] for n in COMMANDS if n.split()[0] == name]
        if not rest or rest[0] not in actions:
            raise UserError(f"{prefix} {name}: give an action, one of: {', '.join(actions)} "
                            f"(e.g. {prefix} {name} {actions[0]} --help)")
        name, rest = f"{name} {rest[0]}", rest[1:]
    module = importlib.import_module(COMMANDS[name][0])
    cli.mount(prefix)
    return cli.run_cli(module.main, rest)


def cli_main() -> int:
    """The ``semiseg`` console script."""
    return cli.run_cli(main)
