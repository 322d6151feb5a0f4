"""Train one run: ``semiseg train --config run.yaml [--set key=value ...]``.

The same entry point runs on a laptop, in a SLURM job or under torchrun; it calls the one run assembly
(:func:`semiseg.runtime.run`). A run whose folder (``<runtime.output_dir>/<runtime.experiment>/<hash>``)
holds ``last.pth`` resumes from it into the same MLflow run; a finished cell is left alone.

exit codes: 0 finished (or already finished), 1 the run failed (diverged loss, a bug), 2 bad input,
75 interrupted by a failed write (disk full, read-only folder), a failed MLflow store or a lost data-parallel
rank (the run stays resumable), 130 stopped by a signal (resumable).
"""

from __future__ import annotations

import argparse
import sys

import yaml

from semiseg.cli import EXIT_RESUMABLE, prog, run_cli
from semiseg.config import config_to_dict, describe_schema, load_config, schema_sections
from semiseg.distributed import lost_peer
from semiseg.errors import ConfigError, StorageError, TrainingDiverged
from semiseg.runtime import run
from semiseg.tracking import is_storage_error, is_tracking_error, short_error


def parse_tags(items: list[str]) -> dict[str, str]:
    """``--tag KEY=VALUE`` values as a dict; a value without ``=`` or with an empty key is an error."""
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--tag {item!r}: expected KEY=VALUE, e.g. --tag semiseg.exp=demo")
        tags[key.strip()] = value
    return tags


def build_parser() -> argparse.ArgumentParser:
    name = prog("train", "semiseg.train")
    parser = argparse.ArgumentParser(
        prog=name, description=__doc__.replace("semiseg train", name, 1),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"examples:\n  {name} --config runs/demo/ab12cd34ef/config.yaml --set train.epochs=2\n"
               f"  {name} --help-config runtime          # the keys of one section, with types, defaults and help\n"
               f"  {name} --config run.yaml --set optim.lr=0.002 --print-config   # the resolved config")
    parser.add_argument("--config", help="run config YAML (every key: --help-config)")
    parser.add_argument("--help-config", nargs="?", const="", metavar="SECTION",
                        help=f"list the config keys with their types, defaults and help, all or one section "
                             f"({', '.join(schema_sections())}), and exit, e.g. --help-config optim")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config (the file with --set applied, every default filled in) "
                             "as YAML and exit")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.lr=0.002 (repeatable)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="extra MLflow tag for the run, e.g. --tag semiseg.exp=demo (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.help_config is not None:
        print(describe_schema(args.help_config or None), end="")
        return 0
    if not args.config:
        parser.error("--config is required (or --help-config to list the keys)")
    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    tags = parse_tags(args.tag)
    try:
        outcome = run(cfg, tags)
    except TrainingDiverged as exc:
        print(f"error: run failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if not (isinstance(exc, StorageError) or is_storage_error(exc)):
            raise
        print(f"error: {exc}. The run is stopped and resumable: free space or fix the folder's permissions, "
              f"then run the same command again", file=sys.stderr)
        return EXIT_RESUMABLE
    except Exception as exc:  # noqa: BLE001 - the store's and the network's errors, told apart here
        if is_tracking_error(exc):
            print(f"error: the MLflow store {cfg.runtime.tracking_uri} failed while the run was training "
                  f"({type(exc).__name__}: {short_error(exc)}). Nothing is lost: "
                  f"the run resumes from its last checkpoint and re-logs what the store lacks; restore the store (or "
                  f"its path), then run the same command again", file=sys.stderr)
            return EXIT_RESUMABLE
        if not (isinstance(exc, RuntimeError) and lost_peer(exc)):
            raise
        print(f"error: a data-parallel rank was lost ({str(exc).splitlines()[0][:200]}); the run is resumable: "
              f"run the same command again", file=sys.stderr)
        return EXIT_RESUMABLE
    if outcome.state is not None:
        print(f"best mIoU {outcome.state.best_miou:.2f}")
    return 0


def cli() -> int:
    """The ``semiseg-train`` console script."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
