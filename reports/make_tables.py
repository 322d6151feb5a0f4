"""Paper-style tables (and an mIoU-vs-labels plot) of one experiment grid, read from MLflow.

Run from the project root as ``python reports/make_tables.py --exp demo`` or ``python -m reports.make_tables``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402

from semiseg.cli import run_cli  # noqa: E402
from semiseg.errors import UserError  # noqa: E402

DEFAULT_URI = "sqlite:///mlflow.db"
EPILOG = """\
examples:
  python reports/make_tables.py --exp demo
  python reports/make_tables.py --exp pascal_r101 --metric ema --format csv --out /tmp/tables
  python -m reports.make_tables --exp demo --tracking-uri sqlite:////abs/path/mlflow.db

Each cell is the mean ± sample std (ddof=1) over seeds of the chosen metric, using the newest FINISHED run
of every cell (config hash); cells without one are counted in the footnote as running/interrupted or failed.
The markdown is always printed to stdout; exit code 2 on a user error (unknown experiment, no runs, ...).
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="make_tables", description=__doc__.splitlines()[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, metavar="NAME",
                   help="MLflow experiment = grid name whose runs are tabulated, e.g. --exp demo")
    p.add_argument("--tracking-uri", default=DEFAULT_URI, metavar="URI",
                   help=f"MLflow tracking URI (default {DEFAULT_URI}, relative to the current folder), "
                        "e.g. --tracking-uri sqlite:////data/semiseg/mlflow.db or http://127.0.0.1:5000")
    p.add_argument("--format", choices=["md", "csv"], default="md",
                   help="file written to --out: md = the markdown tables (default); csv = one tidy row per "
                        "method × split with mean, std, n, Δ, ... e.g. --format csv")
    p.add_argument("--out", default="reports/out", metavar="DIR",
                   help="output folder for <exp>.md|csv and <exp>_miou_vs_labels.png "
                        "(default reports/out, relative to the current folder), e.g. --out /tmp/tables")
    p.add_argument("--metric", choices=["best", "last", "ema"], default="best",
                   help="summary metric: best = best_miou (max over epochs, default), last = last_miou "
                        "(final epoch), ema = best_miou_ema (EMA teacher, V2-style methods), e.g. --metric ema")
    return p.parse_args(argv)


def _existing_experiments(uri: str) -> list[str]:
    """Experiment names of the store, for the error message."""
    from semiseg import tracking

    return sorted(tracking.list_experiments(uri))


def load_runs(uri: str, exp: str):
    """The runs frame of ``exp``; a :class:`UserError` when the store or the experiment has no runs."""
    from semiseg import tracking

    resolved = tracking.resolve_uri(uri)
    if resolved.startswith("sqlite:///") and not Path(resolved[len("sqlite:///"):]).is_file():
        raise UserError(f"tracking store {uri} does not exist (no file {resolved[len('sqlite:///'):]}); "
                        f"pass the store of experiment {exp!r} with --tracking-uri")
    frame = tracking.runs_frame(uri, exp)
    if frame.empty:
        names = _existing_experiments(uri)
        listing = f"; existing experiments: {', '.join(names)}" if names else ""
        raise UserError(f"experiment {exp!r} has no runs in tracking store {uri} (unknown experiment, or none "
                        f"of its runs started yet){listing}. Check --exp and --tracking-uri.")
    return frame


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from reports import tables as tb

    frame = load_runs(args.tracking_uri, args.exp)
    name = tb.metric_name(args.metric)
    if name not in tb.summary_metrics(frame):
        logged = ", ".join(tb.summary_metrics(frame)) or "none"
        raise UserError(f"no finished run of experiment {args.exp!r} in {args.tracking_uri} logged metric "
                        f"{name!r} (--metric {args.metric}); summary metrics logged: {logged}")
    tables = tb.build_tables(frame, args.metric)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = tb.render_markdown(tables, args.exp)
    stem = args.exp.replace("/", "_").replace("\\", "_")
    target = out / f"{stem}.{args.format}"
    if args.format == "md":
        target.write_text(markdown, encoding="utf-8")
    else:
        tb.csv_frame(tables, args.exp).to_csv(target, index=False)

    from reports.plots import plot_miou_vs_labels

    png = plot_miou_vs_labels(tables, out / f"{stem}_miou_vs_labels.png", exp=args.exp)
    sys.stdout.write(markdown)
    print(f"wrote {target} and {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
