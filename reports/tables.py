"""Paper-style result tables: pure pandas functions from a runs frame to formatted tables.

Input is the frame of :func:`semiseg.tracking.runs_frame` (one row per MLflow run). The steps are

1. :func:`select_cells` – one row per cell (config hash): its newest FINISHED run, else its newest run,
   whose state then says why the cell has no result (running/interrupted or failed);
2. :func:`split_recipes` – a table entry is one *recipe* (tag ``semiseg.recipe``: the config without the
   seed), never several: the cells of the recipes asked for (the experiment's current expansion), or without
   that, of each entry's recipe with the most finished seeds; the cells of other recipes (a smoke run with
   ``--set train.epochs=2``, a tuning trial) are summarised apart, in a footnote, never averaged in;
3. :func:`summarise` – one row per (dataset, backbone, method, split): mean, sample std (ddof=1) and number
   of seeds of the chosen metric over finished cells, the Δ to the supervised row with its significance
   over the seeds (:func:`gain_p_value`), the best-per-column flag and the formatted cell text;
4. :func:`build_tables` – one :class:`Table` per (dataset, backbone) (rows = methods, columns = splits
   ordered by number of labeled images), rendered by :func:`render_markdown` or flattened by
   :func:`csv_frame`.

Everything is vectorised (groupby/pivot); the only Python loops run over tables, never over runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Collection

import numpy as np
import pandas as pd

from semiseg.tracking import FRAME_PARAMS

#: Row order of the methods; methods not listed follow alphabetically.
METHOD_ORDER = ("supervised", "fixmatch", "unimatch", "unimatch_v2", "prevmatch", "corrmatch")
#: The ``--metric`` choices → summary metric name logged by the engine.
METRIC_NAMES = {"best": "best_miou", "last": "last_miou", "ema": "best_miou_ema"}
BASELINE = "supervised"
MISSING = "—"
DELTA_LABEL = "Δ vs supervised"
#: Identity of one table entry (several seeds = several cells of one recipe).
ENTRY = ["dataset", "backbone", "method", "split"]
UNKNOWN = "?"
#: A Δ is called significant (marked ``*``) below this two-sided p-value.
ALPHA = 0.05
#: A table whose entries all have at most this many seeds also lists each seed's value (:func:`seed_note`).
SEED_NOTE_MAX = 5
#: Resamples of the bootstrap test used when scipy is not installed.
BOOTSTRAP_RESAMPLES = 10_000

#: Paper column names of splits given as image counts: Pascal's high-quality splits are fractions of its
#: 1464 fine images (UniMatch/PrevMatch/CorrMatch tables: ``1/16 (92)`` ... ``Full (1464)``).
PAPER_FRACTIONS = {"pascal": {"92": "1/16", "183": "1/8", "366": "1/4", "732": "1/2", "1464": "Full"}}

_FRACTION = re.compile(r"^(?P<prefix>.*?)(?P<num>\d+)_(?P<den>\d+)$")


@dataclass
class Table:
    """One (dataset, backbone) table."""

    dataset: str
    backbone: str
    metric: str
    #: Display frame: index = row labels (methods, then Δ rows), columns = split labels; markdown cell text.
    frame: pd.DataFrame
    #: Numeric long rows of this table (one per method × split that has at least one cell).
    stats: pd.DataFrame
    #: Footnote lines printed under the table.
    notes: list[str] = field(default_factory=list)
    #: The selected run of every cell of this table (rows of :func:`select_cells`).
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def title(self) -> str:
        return f"{self.dataset} / {self.backbone}"


# ----------------------------------------------------------------------------------------------- helpers


def metric_name(metric: str) -> str:
    """``best``/``last``/``ema`` → the logged summary metric name (other names pass through)."""
    return METRIC_NAMES.get(metric, metric)


def summary_metrics(frame: pd.DataFrame) -> list[str]:
    """Names of the summary metrics (no ``/`` in the name) that at least one finished run logged."""
    finished = frame[frame["state"].eq("finished")] if "state" in frame else frame.iloc[:0]
    cols = [c for c in finished.columns if c.startswith("metrics.") and "/" not in c]
    return sorted(c[len("metrics."):] for c in cols if finished[c].notna().any())


def split_label(split: str, n_labeled: float | int | None, dataset: str = "") -> str:
    """Paper-style column label: ``1_32`` + 24 → ``1/32 (24)``, ``92`` → ``92`` (``1/16 (92)`` for pascal, see
    :data:`PAPER_FRACTIONS`), ``all`` + 768 → ``all (768)``."""
    split = str(split)
    n = None if n_labeled is None or pd.isna(n_labeled) else int(n_labeled)
    paper = PAPER_FRACTIONS.get(str(dataset), {}).get(split)
    if paper and (n is None or n == int(split)):
        return f"{paper} ({split})"
    match = _FRACTION.match(split)
    if match:
        prefix = match["prefix"].rstrip("_-")
        name = f"{prefix + ' ' if prefix else ''}{match['num']}/{match['den']}"
    else:
        name = split
        if split.isdigit() and (n is None or int(split) == n):
            return split
    return name if n is None else f"{name} ({n})"


def method_order(methods) -> list[str]:
    """Known methods in :data:`METHOD_ORDER`, then the others alphabetically."""
    present = {str(m) for m in methods}
    return [m for m in METHOD_ORDER if m in present] + sorted(present.difference(METHOD_ORDER))


def _plural(count: int, singular: str, plural: str) -> str:
    return singular if count == 1 else plural


def format_value(mean: pd.Series, std: pd.Series, n: pd.Series) -> pd.Series:
    """``61.3 ± 0.8 (n=3)``, ``61.3 (n=1)`` (no std for a single seed), :data:`MISSING` without a value."""
    n = n.fillna(0).astype(int)
    head = mean.map("{:.1f}".format)
    spread = (" ± " + std.map("{:.1f}".format)).where(std.notna() & n.gt(1), "")
    text = head + spread + " (n=" + n.astype(str) + ")"
    return text.where(mean.notna() & n.gt(0), MISSING)


def format_delta(delta: pd.Series, p: pd.Series | None = None, n: pd.Series | None = None,
                 n_base: pd.Series | None = None) -> pd.Series:
    """``+5.2`` / ``-1.0`` (``+0.0`` instead of ``-0.0``); :data:`MISSING` where undefined. With the p-values
    and seed counts: ``+5.2* (p=0.004, n=3/3)`` (``*``: p < :data:`ALPHA`; ``p<0.001`` below that), ``+5.2
    (untested, n=1/3)`` when a side has fewer than two seeds."""
    rounded = delta.round(1) + 0.0
    text = rounded.map("{:+.1f}".format)
    if p is not None:
        counts = "n=" + n.fillna(0).astype(int).astype(str) + "/" + n_base.fillna(0).astype(int).astype(str)
        star = pd.Series(np.where(p.lt(ALPHA), "*", ""), index=delta.index)
        p_text = p.map(lambda v: "p<0.001" if v < 0.001 else f"p={v:.3f}")
        tested = text + star + " (" + p_text + ", " + counts + ")"
        text = tested.where(p.notna(), text + " (untested, " + counts + ")")
    return text.where(delta.notna(), MISSING)


def gain_p_value(values: list[float], base: list[float]) -> float:
    """Two-sided p-value that the mean of ``values`` (the seeds of a method) differs from that of ``base``
    (the baseline's seeds); NaN when a side has fewer than two seeds.

    Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) when scipy is installed; otherwise a
    bootstrap: both sides resampled with replacement :data:`BOOTSTRAP_RESAMPLES` times (fixed seed, so the
    report is reproducible), p = 2 x the smaller tail share of the resampled mean differences beyond 0.
    Equal values on both sides (no variance) give p = 1 when the means agree, else 0.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(base, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    if a.std() == 0 and b.std() == 0:
        return 1.0 if a.mean() == b.mean() else 0.0
    try:
        from scipy.stats import ttest_ind
    except ImportError:
        rng = np.random.default_rng(0)
        diffs = (rng.choice(a, (BOOTSTRAP_RESAMPLES, len(a))).mean(1)
                 - rng.choice(b, (BOOTSTRAP_RESAMPLES, len(b))).mean(1))
        return float(min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    return float(ttest_ind(a, b, equal_var=False).pvalue)


# ----------------------------------------------------------------------------------------------- steps


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a runs frame with every column the tables use: missing entry tags become ``?``, runs
    without a hash tag are their own cell, times are numbers (ms, 0 when unknown)."""
    df = frame.copy()
    for col in ("hash", *ENTRY, "recipe", "seed", "n_labeled", "state", *FRAME_PARAMS):
        if col not in df:
            df[col] = None
    df["hash"] = df["hash"].replace("", np.nan).fillna(df["run_id"])
    df["recipe"] = df["recipe"].replace("", np.nan).fillna(UNKNOWN).astype(str)  # runs older than the tag
    df[ENTRY] = df[ENTRY].replace("", np.nan).fillna(UNKNOWN).astype(str)
    for col in ("start_time", "end_time"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0) if col in df else 0
    return df


def select_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell hash: the newest FINISHED run, or the newest run when none finished.

    Runs without a hash tag are their own cell; missing dataset/backbone/method/split tags become ``?``.
    """
    df = normalise(frame)
    df["_finished"] = df["state"].eq("finished")
    df = df.sort_values(["_finished", "start_time"], ascending=[False, False], kind="stable")
    return df.drop_duplicates("hash", keep="first").drop(columns="_finished").reset_index(drop=True)


def split_recipes(cells: pd.DataFrame, recipes: Collection[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(shown, apart)``: the cells of the table's recipes and those of every other recipe.

    ``recipes``: the recipe hashes to show (the experiment's current expansion); None: per entry (dataset,
    backbone, method, split) the recipe with the most finished cells (ties: the newest).
    """
    if recipes is not None:
        mine = cells["recipe"].isin(set(recipes))
        return cells[mine].reset_index(drop=True), cells[~mine].reset_index(drop=True)
    ranked = (cells.assign(_finished=cells["state"].eq("finished"))
              .groupby([*ENTRY, "recipe"], sort=False).agg(_n=("_finished", "sum"), _t=("start_time", "max"))
              .reset_index().sort_values(["_n", "_t"], ascending=False, kind="stable")
              .drop_duplicates(ENTRY))
    mine = cells.set_index([*ENTRY, "recipe"]).index.isin(ranked.set_index([*ENTRY, "recipe"]).index)
    return cells[mine].reset_index(drop=True), cells[~mine].reset_index(drop=True)


def metric_values(cells: pd.DataFrame, metric: str) -> pd.Series:
    """The summary metric of each cell's selected run as a number; NaN where it was not logged."""
    col = f"metrics.{metric_name(metric)}"
    return pd.to_numeric(cells[col], errors="coerce") if col in cells else pd.Series(np.nan, index=cells.index)


def summarise(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (dataset, backbone, method, split) present in ``cells`` (output of :func:`select_cells`).

    Columns: the entry keys, ``recipe`` (the recipe hashes of its cells, normally one), ``n_labeled``,
    ``split_label``, ``mean``, ``std`` (sample std, ddof=1; NaN for one seed), ``n`` (finished cells with the
    metric), ``seeds`` (distinct seeds among them), ``running``, ``failed`` and ``no_metric`` (cells counted
    per reason of having no value), ``delta`` (mean − supervised mean), ``p_value`` (:func:`gain_p_value`
    of the seeds against the supervised seeds), ``n_base`` (the supervised seeds), ``best`` (best rounded mean
    of its column) and ``cell`` / ``delta_text`` (formatted text).
    """
    value = metric_values(cells, metric)
    finished = cells["state"].eq("finished")
    has_value = finished & value.notna()
    df = cells[[*ENTRY, "recipe"]].assign(
        value=value.where(finished),
        seed=cells["seed"].where(has_value),
        n_labeled=pd.to_numeric(cells["n_labeled"], errors="coerce"),
        running=cells["state"].eq("interrupted"),
        failed=~finished & ~cells["state"].eq("interrupted"),
        no_metric=finished & value.isna(),
    )
    stats = (
        df.groupby(ENTRY, sort=False)
        .agg(mean=("value", "mean"), std=("value", "std"), n=("value", "count"), seeds=("seed", "nunique"),
             running=("running", "sum"), failed=("failed", "sum"), no_metric=("no_metric", "sum"),
             values=("value", lambda v: v.dropna().tolist()),
             recipe=("recipe", lambda r: ",".join(sorted(set(r)))))
        .reset_index()
    )
    # The number of labeled images belongs to the dataset's split, whatever the method or backbone.
    n_lab = df.groupby(["dataset", "split"])["n_labeled"].max().rename("n_labeled").reset_index()
    stats = stats.merge(n_lab, on=["dataset", "split"], how="left")
    labels = stats[["dataset", "split", "n_labeled"]].drop_duplicates()
    labels["split_label"] = [split_label(s, n, d) for d, s, n in
                             zip(labels["dataset"], labels["split"], labels["n_labeled"])]
    stats = stats.merge(labels, on=["dataset", "split", "n_labeled"], how="left")

    column = ["dataset", "backbone", "split"]
    base = stats.loc[stats["method"].eq(BASELINE), [*column, "mean", "values"]].rename(
        columns={"mean": "_base", "values": "_base_values"})
    stats = stats.merge(base, on=column, how="left")
    stats["delta"] = (stats["mean"] - stats["_base"]).where(stats["method"].ne(BASELINE))
    base_values = stats["_base_values"].map(lambda v: v if isinstance(v, list) else [])
    stats["n_base"] = base_values.map(len)
    stats["p_value"] = [gain_p_value(v, b) if d == d else np.nan
                        for v, b, d in zip(stats["values"], base_values, stats["delta"])]
    shown = stats["mean"].round(1)
    stats["best"] = shown.notna() & shown.eq(shown.groupby([stats[c] for c in column]).transform("max"))
    stats["cell"] = format_value(stats["mean"], stats["std"], stats["n"])
    stats["delta_text"] = format_delta(stats["delta"], stats["p_value"], stats["n"], stats["n_base"])
    for c in ("n", "seeds", "running", "failed", "no_metric"):
        stats[c] = stats[c].astype(int)
    return stats.drop(columns=["_base", "_base_values", "values"])


def entry_costs(frame: pd.DataFrame) -> pd.DataFrame:
    """Device-hours spent per entry (dataset, backbone, method, split) over ALL its runs that ended (failed
    and superseded re-runs included): (end − start) × ``train.gpus`` (1 when not logged), split into
    ``gpu_hours`` (``derived.device`` not cpu) and ``cpu_hours`` (``derived.device`` = cpu), plus ``runs`` (the
    number that ended)."""
    df = normalise(frame)
    ended = df["end_time"].gt(df["start_time"]) & df["start_time"].gt(0)
    devices = pd.to_numeric(df["train.gpus"], errors="coerce").fillna(1)
    hours = ((df["end_time"] - df["start_time"]) / 3.6e6 * devices).where(ended, 0.0)
    on_cpu = df["derived.device"].fillna("").astype(str).str.lower().str.startswith("cpu")
    costs = df[ENTRY].assign(gpu_hours=hours.where(~on_cpu, 0.0), cpu_hours=hours.where(on_cpu, 0.0),
                             runs=ended.astype(int))
    return costs.groupby(ENTRY, sort=False)[["gpu_hours", "cpu_hours", "runs"]].sum().reset_index()


def format_hours(gpu: float, cpu: float) -> str:
    """``12.3 GPU-h``, ``0.05 CPU-h``, ``1.0 GPU-h + 0.2 CPU-h``; ``0 device-h`` when nothing ended."""
    def fmt(h: float) -> str:
        return f"{h:.1f}" if h >= 10 else f"{h:.2f}" if h >= 0.01 else f"{h:.4f}"

    parts = [f"{fmt(h)} {kind}-h" for h, kind in ((gpu, "GPU"), (cpu, "CPU")) if h > 0]
    return " + ".join(parts) or "0 device-h"


def _column_order(stats: pd.DataFrame) -> pd.DataFrame:
    """Distinct splits of one table ordered by number of labeled images (unknown last), then name."""
    cols = stats[["split", "n_labeled", "split_label"]].drop_duplicates("split")
    return cols.sort_values(["n_labeled", "split"], na_position="last", kind="stable")


def _notes(stats: pd.DataFrame, n_rows: int, n_cols: int, metric: str) -> list[str]:
    name = metric_name(metric)
    has_baseline = stats["method"].eq(BASELINE).any()
    legend = (f"Cells: mean ± sample std (ddof=1) of `{name}` over seeds, n = number of seeds "
              "(newest finished run per cell); **bold** = best mean per column")
    legend += ("; Δ = difference of means to supervised (mIoU points), with the two-sided p-value of "
               f"{_test_name()} over the seeds and n = seeds of the method/supervised; * = p < {ALPHA}, a gain "
               "beyond seed noise; untested with fewer than 2 seeds on a side." if has_baseline else ".")
    notes = [legend]

    missing = n_rows * n_cols - int(stats["n"].gt(0).sum())
    counts = [(int(stats["running"].sum()), "running/interrupted"), (int(stats["failed"].sum()), "failed"),
              (int(stats["no_metric"].sum()), f"finished without {name}")]
    parts = []
    for count, what in counts:
        if count:
            noun = "" if parts else _plural(count, "cell ", "cells ")
            parts.append(f"{count} {noun}{what}")
    not_run = missing - int(stats["n"].eq(0).sum())
    if not_run:
        parts.append(f"{not_run} {_plural(not_run, 'entry', 'entries')} not run")
    if parts:
        notes.append(("— : " if missing else "not in n: ") + ", ".join(parts))

    if "gpu_hours" in stats:
        runs = int(stats["runs"].sum())
        notes.append(f"Cost: {format_hours(stats['gpu_hours'].sum(), stats['cpu_hours'].sum())} over {runs} "
                     f"{_plural(runs, 'run', 'runs')} (all runs that ended, failed and superseded ones included; "
                     "duration × train.gpus; per entry in the CSV).")

    dup = stats[stats["n"].gt(stats["seeds"])]
    if not dup.empty:
        which = ", ".join(dup["method"] + " " + dup["split_label"])
        notes.append(f"note: several finished cells share a seed (configs differ in untagged settings): {which}")
    return notes


def seed_note(cells: pd.DataFrame, stats: pd.DataFrame, metric: str) -> list[str]:
    """Each entry's value per seed with its spread (max − min), and each method's gain over supervised seed by
    seed: what mean ± std hides when a grid has few seeds (the demo's question: does the gain hold on every
    seed, by more than the seeds' own spread?). One line per column; nothing when an entry has more than
    :data:`SEED_NOTE_MAX` seeds or none has two."""
    if stats["n"].max() > SEED_NOTE_MAX or stats["n"].max() < 2:
        return []
    value = metric_values(cells, metric).where(cells["state"].eq("finished"))
    values = (cells.assign(value=value, seed=cells["seed"].astype(str))[value.notna()]
              .pivot_table(index=["split", "method"], columns="seed", values="value", aggfunc="last"))
    lines = []
    for split, label in _column_order(stats)[["split", "split_label"]].itertuples(index=False):
        if split not in values.index.get_level_values("split"):
            continue
        table = values.loc[split].reindex([m for m in method_order(values.loc[split].index)])
        base = table.loc[BASELINE] if BASELINE in table.index else None
        parts = []
        for method, row in table.iterrows():
            row = row.dropna()
            text = f"{method} " + ", ".join(f"s{seed} {v:.1f}" for seed, v in row.items())
            if len(row) > 1:
                text += f" (spread {row.max() - row.min():.1f})"
            if base is not None and method != BASELINE:
                gain = (row - base).dropna()
                if len(gain):
                    spread = max(row.max() - row.min(), base.max() - base.min())
                    text += (", minus supervised on the same seed: " + ", ".join(f"{g:+.1f}" for g in gain)
                             + f" (smallest {gain.min():+.1f}; the larger spread {spread:.1f})")
            parts.append(text)
        lines.append(f"Per seed, {label}: " + "; ".join(parts) + ".")
    return lines


def _test_name() -> str:
    try:
        import scipy  # noqa: F401
    except ImportError:
        return f"a bootstrap of the difference of means ({BOOTSTRAP_RESAMPLES} resamples)"
    return "Welch's t-test"


def other_recipes(apart: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (entry, recipe) of the cells kept apart (:func:`split_recipes`), with their summary."""
    if apart.empty:
        return pd.DataFrame(columns=[*ENTRY, "recipe", "split_label", "cell"])
    return pd.concat([summarise(part, metric).assign(recipe=recipe) for recipe, part in apart.groupby("recipe")],
                     ignore_index=True)


def _apart_note(others: pd.DataFrame) -> list[str]:
    if others.empty:
        return []
    items = "; ".join(others["method"] + " " + others["split_label"] + " [recipe " + others["recipe"].str[:10]
                      + "]: " + others["cell"])
    return [f"Other recipes of these entries (other settings, e.g. a --set run or a tuning trial), not averaged "
            f"in: {items}"]


def build_tables(frame: pd.DataFrame, metric: str = "best", recipes: Collection[str] | None = None) -> list[Table]:
    """One :class:`Table` per (dataset, backbone) of the runs frame, sorted by dataset then backbone.

    ``recipes``: the recipe hashes whose cells make the tables (the experiment's current expansion); the
    cells of other recipes are summarised apart in a footnote (see :func:`split_recipes`)."""
    if frame.empty:
        return []
    cells, apart = split_recipes(select_cells(frame), recipes)
    if cells.empty:
        return []
    apart_stats = other_recipes(apart, metric)
    stats = summarise(cells, metric).merge(entry_costs(frame), on=ENTRY, how="left")
    tables = []
    for (dataset, backbone), sub in stats.groupby(["dataset", "backbone"], sort=True):
        methods = method_order(sub["method"].unique())
        cols = _column_order(sub)
        sub = sub.assign(
            _method_rank=sub["method"].map({m: i for i, m in enumerate(methods)}),
            _split_rank=sub["split"].map({s: i for i, s in enumerate(cols["split"])}),
        ).sort_values(["_method_rank", "_split_rank"]).drop(columns=["_method_rank", "_split_rank"])
        sub = sub.reset_index(drop=True)

        text = sub["cell"].where(~sub["best"], "**" + sub["cell"] + "**")
        wide = (sub.assign(text=text).pivot(index="method", columns="split", values="text")
                .reindex(index=methods, columns=list(cols["split"])).fillna(MISSING))
        if BASELINE in methods and len(methods) > 1:
            others = [m for m in methods if m != BASELINE]
            delta = (sub.pivot(index="method", columns="split", values="delta_text")
                     .reindex(index=others, columns=list(cols["split"])).fillna(MISSING))
            delta.index = [f"{DELTA_LABEL}: {m}" for m in others]
            wide = pd.concat([wide, delta])
        wide.columns = list(cols["split_label"])
        wide.index.name = "method"
        mine = cells[cells["dataset"].eq(dataset) & cells["backbone"].eq(backbone)]
        mine_apart = apart_stats[apart_stats["dataset"].eq(dataset) & apart_stats["backbone"].eq(backbone)]
        tables.append(Table(str(dataset), str(backbone), metric_name(metric), wide, sub,
                            _notes(sub, len(methods), len(cols), metric) + seed_note(mine, sub, metric)
                            + _apart_note(mine_apart),
                            mine.reset_index(drop=True)))
    return tables


# ----------------------------------------------------------------------------------------------- output


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub pipe table of a display frame (index as first column)."""
    def esc(text) -> str:
        return str(text).replace("|", "\\|")

    header = [frame.index.name or "", *frame.columns]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |",
             "|:---|" + "".join("---:|" for _ in frame.columns)]
    body = frame.astype(str).map(esc)
    rows = pd.Series(body.index.map(esc), index=body.index)
    for col in body.columns:
        rows = rows + " | " + body[col]
    lines += ("| " + rows + " |").tolist()
    return "\n".join(lines)


def render_markdown(tables: list[Table], exp: str) -> str:
    """The whole report: a title, then per table a heading, the pipe table and its footnotes."""
    metric = tables[0].metric if tables else ""
    out = [f"# {exp}: {metric}"]
    for table in tables:
        out += ["", f"## {table.title}", "", markdown_table(table.frame)]
        for note in table.notes:
            out += ["", note]
    return "\n".join(out) + "\n"


def hardware_note(frame: pd.DataFrame) -> str:
    """A line naming where the finished runs trained (``derived.hardware``) and in which precision
    (``derived.amp``): their figures are exactly reproducible only there (docs/demo.md)."""
    done = frame[frame["state"] == "finished"] if "state" in frame else frame
    pairs = sorted({(str(h), {"off": "fp32"}.get(str(a), str(a))) for h, a in
                    zip(done.get("derived.hardware", []), done.get("derived.amp", [])) if pd.notna(h)})
    if not pairs:
        return ""
    return "\nTrained on: " + "; ".join(f"{h}, {a}" for h, a in pairs) + ".\n"


#: Columns of the CSV output, one row per (dataset, backbone, method, split) with at least one cell.
CSV_COLUMNS = ["exp", "dataset", "backbone", "method", "split", "split_label", "n_labeled", "recipe", "metric", "mean",
               "std", "n", "seeds", "delta_vs_supervised", "p_value", "n_base", "best", "cell", "running", "failed",
               "no_metric", "runs", "gpu_hours", "cpu_hours"]


def csv_frame(tables: list[Table], exp: str) -> pd.DataFrame:
    """Tidy numeric rows of all tables (same order as the markdown), for spreadsheets and scripts."""
    if not tables:
        return pd.DataFrame(columns=CSV_COLUMNS)
    rows = pd.concat([t.stats.assign(metric=t.metric) for t in tables], ignore_index=True)
    rows = rows.assign(exp=exp, delta_vs_supervised=rows["delta"], n_labeled=rows["n_labeled"].astype("Int64"))
    return rows[CSV_COLUMNS]


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "—": "---", "Δ": r"$\Delta$", "−": "$-$", "×": r"$\times$", "`": "", "<": "$<$",
                  ">": "$>$"}
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def latex_text(text) -> str:
    """Markdown cell/note text → LaTeX: special characters escaped, ``**x**`` → ``\\textbf{x}``, ± → $\\pm$."""
    out = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))
    out = "".join(_LATEX_SYMBOLS.get(ch, ch) for ch in out)
    return _BOLD.sub(r"\\textbf{\1}", out)


def latex_table(frame: pd.DataFrame, caption: str, notes: list[str], label: str = "") -> str:
    """A booktabs ``table`` environment of a display frame; rows whose label starts with ``Δ`` go below a
    ``\\midrule``; ``notes`` become footnote lines under the tabular."""
    cols = "l" + "r" * len(frame.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{latex_text(caption)}}}"]
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
              " & ".join(latex_text(c) for c in [frame.index.name or "", *frame.columns]) + r" \\", r"\midrule"]
    previous_delta = False
    for name, row in frame.iterrows():
        is_delta = str(name).startswith("Δ")
        if is_delta and not previous_delta:
            lines.append(r"\midrule")
        previous_delta = is_delta
        lines.append(" & ".join(latex_text(c) for c in [name, *row.tolist()]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if notes:
        lines += [r"\par\smallskip", r"\begin{minipage}{\linewidth}\footnotesize"]
        lines += [latex_text(note) + (r" \\" if i < len(notes) - 1 else "") for i, note in enumerate(notes)]
        lines.append(r"\end{minipage}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def render_latex(tables: list[Table], exp: str) -> str:
    """The whole report as LaTeX (needs ``\\usepackage{booktabs}``): one ``table`` per (dataset, backbone)."""
    out = [f"% {exp}: paper tables generated by reports/make_tables.py; needs \\usepackage{{booktabs}}"]
    for table in tables:
        label = "tab:" + re.sub(r"[^A-Za-z0-9]+", "-", f"{exp}-{table.dataset}-{table.backbone}")
        caption = f"{exp}: {table.title}, {table.metric} (mIoU, %)"
        out += ["", latex_table(table.frame, caption, table.notes, label)]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------- plot data

CLASS_PREFIX = "metrics.val/iou/"


def curve_runs(table: Table) -> pd.DataFrame:
    """The run whose ``val/miou`` curve stands for each (method, split) of a table: its finished cell with
    the lowest seed. Columns: method, split, split_label, n_labeled, seed, run_id (and ``store`` if known)."""
    cells = table.cells[table.cells["state"].eq("finished")]
    if cells.empty:
        return pd.DataFrame(columns=["method", "split", "split_label", "n_labeled", "seed", "run_id", "store"])
    cells = cells.assign(_seed=pd.to_numeric(cells["seed"], errors="coerce")).sort_values(["_seed", "run_id"])
    picked = cells.drop_duplicates(["method", "split"]).drop(columns="_seed")
    labels = table.stats[["method", "split", "split_label", "n_labeled"]]
    keep = ["method", "split", "seed", "run_id"] + (["store"] if "store" in picked else [])
    return picked[keep].merge(labels, on=["method", "split"]).sort_values(["n_labeled", "method"])


def class_iou(table: Table) -> tuple[str, pd.DataFrame]:
    """Per-class IoU (mean over the seeds' finished cells) per method, at the split with the most labeled images
    that has per-class metrics: ``(split label, frame index = class, columns = methods)``; empty when none."""
    cols = [c for c in table.cells.columns if c.startswith(CLASS_PREFIX)]
    cells = table.cells[table.cells["state"].eq("finished")]
    if not cols or cells.empty:
        return "", pd.DataFrame()
    cells = cells[cells[cols].notna().any(axis=1)]
    if cells.empty:
        return "", pd.DataFrame()
    labels = table.stats.drop_duplicates("split").set_index("split")
    best = labels.loc[cells["split"].unique()].sort_values("n_labeled", na_position="first").index[-1]
    rows = cells[cells["split"].eq(best)]
    means = rows.groupby("method")[cols].mean().T
    means.index = [c[len(CLASS_PREFIX):] for c in means.index]
    return str(labels.loc[best, "split_label"]), means[method_order(means.columns)]
