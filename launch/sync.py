"""Record into MLflow what only SLURM knows: cells whose job ended (out of memory, node failure, cancelled)
without their run reporting it get a FAILED run carrying the ``sacct`` reason, so reports and the next launch
see them as failed. Pass the same selection options as the launch (they decide the cells' hashes).

{status} shows the same states without writing anything; {grid} --backend slurm records them too.

examples:
  {prog} --exp demo
  {prog} --exp pascal_all --methods unimatch --tracking-uri http://127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import sys

from semiseg.launch.options import selection_options
from semiseg.launch.status import collect, format_status
from semiseg.cli import prog, run_cli


def build_parser() -> argparse.ArgumentParser:
    name = prog("sync", "semiseg.launch.sync")
    doc = __doc__.format(prog=name, status=prog("status", "semiseg.launch.status"),
                         grid=prog("grid", "semiseg.launch.run_grid"))
    return argparse.ArgumentParser(prog=name, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                   parents=[selection_options()])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    before = {p.cell.hash: p.status for p in collect(args, record=False)}
    planned = collect(args, record=True)
    recorded = [p for p in planned if p.status == "FAILED" and before.get(p.cell.hash) != "FAILED"]
    print(format_status(planned))
    print(f"recorded {len(recorded)} failed SLURM job(s) into MLflow" if recorded else
          "nothing to record: every ended SLURM job's run already reports its outcome")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
