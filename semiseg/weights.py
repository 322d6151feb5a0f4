"""Published encoder weights: ``semiseg weights list|fetch``.

``model.pretrained`` may name them (resnet50, resnet101, xception, tv_resnet50, tv_resnet101, dinov2_small,
dinov2_base, dinov2_large):
a run fetches the file on first use; ``fetch`` does it ahead (e.g. on a login node with network), and
``fetch NAME --from FILE`` takes a copy you already have, verified the same way (:mod:`semiseg.models.published`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from semiseg.cli import prog, run_cli
from semiseg.download import Settings, file_checksum
from semiseg.errors import UserError
from semiseg.models.published import check_published, ensure_published, weights_path
from semiseg.sources import PUBLISHED_WEIGHTS

EXAMPLES = """examples:
  semiseg weights list
  semiseg weights fetch resnet101 dinov2_base
  semiseg weights fetch resnet101 --from ~/UniMatch/pretrained/resnet101.pth
"""


def _cmd_list(args) -> int:
    for name, spec in PUBLISHED_WEIGHTS.items():
        problem = check_published(name)
        state = "cached" if problem is None else "not cached" if not weights_path(name).is_file() else "BAD"
        print(f"{name:13} {spec.source.size_mb:>5} MB  {state:10}  {weights_path(name)}\n"
              f"{'':13} {spec.source.url}\n{'':13} mirror key {spec.source.key}; "
              f"{spec.source.checksum or 'trust on first use'}: {spec.source.note}")
    return 0


def _cmd_fetch(args) -> int:
    if args.from_file and len(args.names) != 1:
        raise UserError(f"--from takes one weights name, got {len(args.names)}: {' '.join(args.names)}")
    settings = Settings.resolve(args.mirror, args.checksums)
    for name in args.names:
        source = Path(args.from_file).expanduser().resolve() if args.from_file else None
        path = ensure_published(name, source, settings)
        print(f"{name}: {path} (sha256 {file_checksum(path, 'sha256')})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog("weights", "semiseg.weights"), description=__doc__, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="each published weights file, its source, checksum and cache state"
                   ).set_defaults(func=_cmd_list)
    fetch = sub.add_parser("fetch", help="fetch and verify weights into the cache (or take --from FILE)",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    fetch.add_argument("names", nargs="+", choices=list(PUBLISHED_WEIGHTS), metavar="NAME",
                       help=f"one of: {', '.join(PUBLISHED_WEIGHTS)}")
    fetch.add_argument("--from", dest="from_file", default="", help="a copy you already have (verified, copied)")
    fetch.add_argument("--mirror", default=None, help="base URL replacing the official ones ($SEMISEG_MIRROR)")
    fetch.add_argument("--checksums", default=None, help="checksum registry file ($SEMISEG_CHECKSUMS)")
    fetch.set_defaults(func=_cmd_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
