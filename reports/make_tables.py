"""Paper-style tables (and an mIoU-vs-labels plot) of one experiment grid, read from MLflow.

Run as ``semiseg tables --exp demo`` (in a clone also ``python reports/make_tables.py --exp demo``).
"""

from __future__ import annotations

import sys
from pathlib import Path


import argparse

from semiseg.cli import prog, run_cli
from semiseg.errors import UserError
from semiseg.workspace import default_tracking_uri, path

EPILOG = """\
examples:
  {prog} --exp demo
  {prog} --exp pascal_all --metric ema --format latex --out /tmp/tables
  {prog} --exp pascal_all --tracking-uri sqlite:////a/mlflow.db --tracking-uri http://host:5000
  {prog} --exp demo --tracking-uri sqlite:////abs/path/mlflow.db --no-log

Each cell is the mean ± sample std (ddof=1) over seeds of the chosen metric, using the newest FINISHED run
of every cell (config hash); cells without one are counted in the footnote as running/interrupted or failed.
A table entry is one recipe (the config without the seed, tag semiseg.recipe): by default the recipes that
--exp (with --set) expands to now; runs of other recipes of the same method and split (a smoke run with
--set train.epochs=2, a tuning trial) are listed apart under the table, never averaged in. Each Δ row gives
the p-value of the gain over the supervised seeds (Welch's t-test; a bootstrap without scipy) and the seeds n.
Runs of several stores (--tracking-uri repeated) are merged. Written to --out: <exp>.md|csv|tex (the tables,
a published-vs-reproduced section from the built-in published.yaml, the device-hours spent), <exp>_published.csv,
<exp>_miou_vs_labels.png and per table <exp>_<dataset>_<backbone>_curves.png / _class_iou.png; the files are
also logged as artifacts of a run of experiment <exp>-reports in the first store (unless --no-log).
The markdown is always printed to stdout; exit code 2 on a user error (unknown experiment, no runs, ...).
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    name = prog("tables", "semiseg.reports.make_tables")
    p = argparse.ArgumentParser(
        prog=name, description=__doc__.splitlines()[0], epilog=EPILOG.format(prog=name),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp", required=True, metavar="NAME",
                   help="MLflow experiment = grid name whose runs are tabulated, e.g. --exp demo")
    p.add_argument("--tracking-uri", action="append", metavar="URI",
                   help="MLflow tracking URI, repeatable: the runs of all stores are merged (default "
                        f"$MLFLOW_TRACKING_URI, else {default_tracking_uri()}), e.g. --tracking-uri "
                        "sqlite:////data/semiseg/mlflow.db --tracking-uri http://127.0.0.1:5000")
    p.add_argument("--format", choices=["md", "csv", "latex"], default="md",
                   help="file written to --out: md = the markdown tables (default); csv = one tidy row per "
                        "method × split with mean, std, n, Δ, device-hours; latex = booktabs tables (.tex), "
                        "e.g. --format latex")
    p.add_argument("--out", default=str(path("reports/out")), metavar="DIR",
                   help=f"output folder for the tables and plots (default {path('reports/out')} in the workspace), "
                        f"e.g. --out /tmp/tables")
    p.add_argument("--metric", choices=["best", "last", "ema"], default="best",
                   help="summary metric: best = best_miou (max over epochs, default), last = last_miou "
                        "(final epoch), ema = best_miou_ema (EMA teacher, V2-style methods), e.g. --metric ema")
    p.add_argument("--published", default=None, metavar="FILE",
                   help="published figures to compare against (default: the built-in published.yaml), "
                        "e.g. --published my_numbers.yaml")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="the override the runs were launched with (as run_grid's --set): the tables show the "
                        "recipes of the experiment's expansion with it, e.g. --set train.epochs=2 (repeatable)")
    p.add_argument("--any-recipe", action="store_true",
                   help="do not restrict the tables to the experiment's current expansion: each entry shows its "
                        "recipe with the most finished seeds (the others are still listed apart), e.g. for an "
                        "MLflow experiment without an experiment file")
    p.add_argument("--no-log", action="store_true",
                   help="do not log the report as an MLflow run of <exp>-reports, e.g. --no-log")
    args = p.parse_args(argv)
    args.tracking_uri = args.tracking_uri or [default_tracking_uri()]
    return args


#: URI schemes of the stores MLflow reads (a plain path is a file store)
STORE_SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
_SQLITE_HEADER = b"SQLite format 3\x00"


def check_args(args: argparse.Namespace) -> None:
    """Reject what would fail half-way: an --out that is no folder, a missing --published file, a store URI
    MLflow cannot open."""
    from urllib.parse import urlsplit

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the tables and plots, e.g. --out tables")
    blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise UserError(f"--out {out}: {blocker} is a file, not a folder")
    if args.published and not Path(args.published).is_file():
        raise UserError(f"--published {args.published} does not exist (default: the built-in published.yaml)")
    for uri in args.tracking_uri:
        scheme = urlsplit(uri).scheme.split("+")[0]
        if scheme not in STORE_SCHEMES:
            raise UserError(f"--tracking-uri {uri}: unsupported scheme {scheme!r}; give sqlite:///PATH/mlflow.db, "
                            f"http(s)://HOST:PORT or a database URL (postgresql://, mysql://, mssql://)")


def check_sqlite_store(db: Path, uri: str) -> None:
    """A sqlite store file must be an MLflow database; MLflow would otherwise fail with a traceback, or migrate
    (write its tables into) an empty or foreign file."""
    import sqlite3

    if db.is_dir():
        raise UserError(f"tracking store {uri}: {db} is a folder, not an MLflow store (a sqlite file)")
    with open(db, "rb") as f:
        header = f.read(len(_SQLITE_HEADER))
    problem = None if header == _SQLITE_HEADER else "not a SQLite database"
    if problem is None:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            tables, problem = set(), f"corrupt: {exc}"
        if problem is None and not {"alembic_version", "experiments", "runs"} <= tables:
            problem = "a SQLite database without MLflow's tables"
    if problem is not None:
        raise UserError(f"tracking store {uri}: {db} is not an MLflow store ({problem}); pass the mlflow.db "
                        f"the runs were tracked in with --tracking-uri")


def _existing_experiments(uri: str) -> list[str]:
    """Experiment names of the store, for the error message."""
    from semiseg import tracking

    return sorted(tracking.list_experiments(uri))


def load_runs(uris: str | list[str], exp: str):
    """The runs frame of ``exp`` merged over the stores ``uris`` (column ``store`` = the URI of each run);
    a :class:`UserError` when a store is missing or no store has runs of the experiment."""
    import pandas as pd

    from semiseg import tracking

    uris = [uris] if isinstance(uris, str) else list(uris)
    frames = []
    for uri in uris:
        db = tracking.sqlite_file(tracking.resolve_uri(uri))
        if db is not None and not db.exists():
            raise UserError(f"tracking store {uri} does not exist (no file {db}); "
                            f"pass the store of experiment {exp!r} with --tracking-uri")
        if db is not None:
            check_sqlite_store(db, uri)
        frame = tracking.runs_frame(uri, exp)
        frame = frame[frame["hash"].notna()]  # a run without its cell tags (killed while created) is no cell's
        if not frame.empty:
            frames.append(frame.assign(store=uri))
    if not frames:
        names = sorted({n for uri in uris for n in _existing_experiments(uri)})
        listing = f"; existing experiments: {', '.join(names)}" if names else ""
        raise UserError(f"experiment {exp!r} has no runs in tracking store {', '.join(uris)} (unknown experiment, "
                        f"or none of its runs started yet){listing}. Check --exp and --tracking-uri.")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def current_recipes(exp: str, sets: list[str], any_recipe: bool) -> tuple[str, set[str] | None]:
    """(the MLflow experiment the runs of ``--exp`` train under, the recipe hashes of its current expansion).

    A path-loaded file trains under its stem; an MLflow experiment without an experiment file (or
    ``--any-recipe``) has no expansion: None (each entry then shows its most-seeded recipe)."""
    from semiseg.config import recipe_hash
    from semiseg.experiments.registry import UnknownExperiment, expand, load_experiment

    try:
        experiment = load_experiment(exp)
    except UnknownExperiment:
        if sets:
            raise UserError(f"--set needs an experiment file, and there is none for --exp {exp!r}") from None
        return exp, None
    if any_recipe:
        return experiment.name, None
    return experiment.name, {recipe_hash(cell.config) for cell in expand(experiment, sets=sets)}


def _slug(*parts: str) -> str:
    return "_".join(p.replace("/", "_").replace("\\", "_").replace(" ", "_") for p in parts)


def write_plots(tables, out: Path, exp: str, refs=None) -> list[Path]:
    """The mIoU-vs-labels figure, and per table its training curves (with the official curve of the same recipe,
    dashed, where ``refs`` has reference runs for it) and per-class IoU bars (when logged)."""
    from semiseg.reports import tables as tb
    from semiseg.reports.plots import plot_class_iou, plot_miou_vs_labels, plot_training_curves
    from semiseg import tracking

    paths = [plot_miou_vs_labels(tables, out / f"{_slug(exp)}_miou_vs_labels.png", exp=exp)]
    for table in tables:
        stem = _slug(exp, table.dataset, table.backbone)
        runs = tb.curve_runs(table)
        curves = {(r.method, r.split_label): tracking.metric_history(r.store, r.run_id, "val/miou")
                  for r in runs.itertuples()}
        official = official_curves(table, runs, refs) if refs else {}
        if any(curves.values()):
            title = f"{exp}: {table.title}\nval mIoU per epoch (finished cell with the lowest seed" + \
                ("; dashed: official logs)" if official else ")")
            paths.append(plot_training_curves(curves, out / f"{stem}_curves.png", title, official))
        split, ious = tb.class_iou(table)
        if not ious.empty:
            title = f"{exp}: {table.title}\nper-class IoU at {split} (final epoch, mean over seeds)"
            paths.append(plot_class_iou(ious, out / f"{stem}_class_iou.png", title))
    return paths


def official_curves(table, runs, refs) -> dict:
    """(method, split label) → the mean official val mIoU curve [(epoch, mIoU)] of the reference runs matching the
    cell of each curve run (identity and recipe values)."""
    import pandas as pd

    from semiseg.reference_match import MATCHED_KEYS

    out = {}
    cells = table.cells.set_index("run_id")
    for r in runs.itertuples():
        cell = cells.loc[r.run_id]
        identity = {"method": r.method, "dataset": table.dataset, "split": r.split, "backbone": table.backbone}
        recipe = {k: pd.to_numeric(cell.get(k), errors="coerce") for k in MATCHED_KEYS}
        curve = refs.mean_curve(refs.matching(identity, recipe))
        if curve:
            out[r.method, r.split_label] = sorted(curve.items())
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_args(args)
    from semiseg.reports import published as pub
    from semiseg.reports import tables as tb

    uris = args.tracking_uri
    args.exp, recipes = current_recipes(args.exp, args.sets, args.any_recipe)
    frame = load_runs(uris, args.exp)
    name = tb.metric_name(args.metric)
    if name not in tb.summary_metrics(frame):
        logged = ", ".join(tb.summary_metrics(frame)) or "none"
        raise UserError(f"no finished run of experiment {args.exp!r} in {', '.join(uris)} logged metric "
                        f"{name!r} (--metric {args.metric}); summary metrics logged: {logged}")
    published = pub.load_published(args.published or pub.PUBLISHED)
    tables = tb.build_tables(frame, args.metric, recipes)
    if not tables:
        raise UserError(f"no run of experiment {args.exp!r} belongs to its current expansion"
                        + (f" with {' '.join('--set ' + s for s in args.sets)}" if args.sets else "")
                        + "; give the --set options the runs were launched with, or --any-recipe to show "
                          "each entry's most-seeded recipe")
    from semiseg.reference_match import References

    refs = References(uris[0])
    comparison = pub.compare(tables, published, pub.official_bests(tables, refs))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = tb.render_markdown(tables, args.exp) + tb.hardware_note(frame) + "\n" + pub.render_markdown(comparison)
    stem = _slug(args.exp)
    suffix = {"md": "md", "csv": "csv", "latex": "tex"}[args.format]
    target = out / f"{stem}.{suffix}"
    if args.format == "md":
        target.write_text(markdown, encoding="utf-8")
    elif args.format == "latex":
        target.write_text(tb.render_latex(tables, args.exp) + "\n" + pub.render_latex(comparison, args.exp),
                          encoding="utf-8")
    else:
        tb.csv_frame(tables, args.exp).to_csv(target, index=False)
    compared = out / f"{stem}_published.csv"
    comparison.to_csv(compared, index=False)
    files = [target, compared, *write_plots(tables, out, args.exp, refs)]

    sys.stdout.write(markdown)
    print("wrote " + ", ".join(map(str, files)), file=sys.stderr)
    if not args.no_log:
        from semiseg import tracking

        run_id = tracking.log_report(uris[0], f"{args.exp}-reports", f"{args.exp}-{args.format}-{args.metric}", files,
                                     tags={"semiseg.report_of": args.exp},
                                     params={"metric": name, "format": args.format, "stores": " ".join(uris)})
        print(f"logged as run {run_id} of experiment {args.exp}-reports in {uris[0]}", file=sys.stderr)
    return 0


def cli() -> int:
    """The ``semiseg-tables`` console script."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
