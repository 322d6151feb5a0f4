"""Published vs reproduced: our mean ± std beside the published README figure of the same entry.

The published figures are the project's own data file ``reports/published.yaml`` (a transcription of the official
READMEs, and of the official training logs where no README gives the figure, each entry citing its source
repository and commit, and the log file where one is the source).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from semiseg.reports.tables import MISSING, Table, format_delta
from semiseg.config import load_yaml
from semiseg.errors import DataError

PUBLISHED = Path(__file__).with_name("published.yaml")
FIELDS = ("method", "encoder", "dataset", "protocol", "split", "n_labeled", "miou", "metric", "source_repo",
          "source_commit")
#: Optional keys: the training log a figure was read from; why no cell of the paper grids runs the entry.
OPTIONAL = ("source_file", "no_grid_cell")
#: Published encoder name → our ``model.backbone`` name where they differ.
ENCODER_ALIASES = {"xception65": "xception"}
#: Columns of the comparison table (display frame; index = row number).
COLUMNS = ["dataset", "encoder", "method", "split", "ours", "published", "Δ (ours − published)", "published metric",
           "source", "official log best"]
#: Cell identity columns of a table's cells → reference-run identity tag names.
_IDENTITY = ("method", "dataset", "split", "backbone")


def load_published(path: str | Path = PUBLISHED) -> pd.DataFrame:
    """The entries of a published-figures file as a frame (one row per entry, ``backbone`` = our encoder name).

    Raises :class:`DataError` naming the file, entry and key when the file is malformed.
    """
    path = Path(path)
    data = load_yaml(path)
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a mapping with a list under 'entries'")
    for i, entry in enumerate(entries):
        missing = [k for k in FIELDS if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise DataError(f"{path}: entry {i} lacks {', '.join(missing)} (each entry needs {', '.join(FIELDS)})")
        if not isinstance(entry["miou"], (int, float)) or not 0 <= entry["miou"] <= 100:
            raise DataError(f"{path}: entry {i} miou={entry['miou']!r}; expected a number in [0, 100]")
        unknown = set(entry) - set(FIELDS) - set(OPTIONAL)
        if unknown:
            raise DataError(f"{path}: entry {i} has unknown key(s) {', '.join(sorted(unknown))}; valid: "
                            f"{', '.join(FIELDS + OPTIONAL)}")
        wrong = [k for k in OPTIONAL if k in entry and not (isinstance(entry[k], str) and entry[k])]
        if wrong:
            raise DataError(f"{path}: entry {i} {wrong[0]}={entry[wrong[0]]!r}; expected a non-empty string")
    frame = pd.DataFrame(entries, columns=list(FIELDS + OPTIONAL))
    frame["split"] = frame["split"].astype(str)
    frame["backbone"] = frame["encoder"].map(lambda e: ENCODER_ALIASES.get(e, e))
    return frame


def official_bests(tables: list[Table], refs) -> pd.DataFrame:
    """Per entry (dataset, backbone, method, split) of ``tables``: the mean best val mIoU of the official logs whose
    reference runs match its cells (identity and recipe, :func:`semiseg.reference_match.matches`) and how many logs."""
    from semiseg.reference_match import MATCHED_KEYS

    rows = []
    for table in tables if refs else []:
        for _, cell in table.cells.drop_duplicates(list(_IDENTITY)).iterrows():
            identity = {k: cell[k] for k in _IDENTITY}
            recipe = {k: pd.to_numeric(cell.get(k), errors="coerce") for k in MATCHED_KEYS}
            best = refs.best_of(refs.matching(identity, recipe))
            if best:
                rows.append({**identity, "official_best": best[0], "official_logs": best[1]})
    return pd.DataFrame(rows, columns=[*_IDENTITY, "official_best", "official_logs"])


def compare(tables: list[Table], published: pd.DataFrame, official: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per entry of ``tables`` that has a published figure (matched on dataset, backbone, method, split):
    our cell text, the published mIoU, the difference of means, the cited source and the best of the official logs
    imported as reference runs (``official``: :func:`official_bests`). Numeric columns ``mean``/``miou``/``diff`` are
    kept beside the display ones."""
    if not tables:
        return pd.DataFrame(columns=[*COLUMNS, "mean", "miou", "diff"])
    ours = pd.concat([t.stats for t in tables], ignore_index=True)
    if official is None:
        official = pd.DataFrame(columns=[*_IDENTITY, "official_best", "official_logs"])
    ours = ours.merge(official, on=list(_IDENTITY), how="left", sort=False)
    rows = ours.merge(published, on=["dataset", "backbone", "method", "split"], how="inner", sort=False)
    rows["diff"] = rows["mean"] - rows["miou"]
    return pd.DataFrame({
        "dataset": rows["dataset"], "encoder": rows["backbone"], "method": rows["method"],
        "split": rows["split_label"], "ours": rows["cell"], "published": rows["miou"].map("{:.1f}".format),
        "Δ (ours − published)": format_delta(rows["diff"]), "published metric": rows["metric"],
        "source": rows["source_repo"] + "@" + rows["source_commit"].str[:7],
        "official log best": [f"{b:.1f} ({int(n)} log{'s' if n > 1 else ''})" if pd.notna(b) else MISSING
                              for b, n in zip(rows["official_best"], rows["official_logs"])],
        "mean": rows["mean"], "miou": rows["miou"], "diff": rows["diff"],
    })


def render_markdown(comparison: pd.DataFrame) -> str:
    """The ``## Published vs reproduced`` section of the markdown report."""
    out = ["## Published vs reproduced", ""]
    if comparison.empty:
        out.append("No entry of this grid has a published figure in reports/published.yaml.")
        return "\n".join(out) + "\n"
    from semiseg.reports.tables import markdown_table

    display = comparison[COLUMNS].set_index("dataset")
    out.append(markdown_table(display))
    out += ["", f"Δ = our mean − published figure (mIoU points); {MISSING} = no finished run. Published figures: "
                "reports/published.yaml (official READMEs at the cited commits). Official log best: the mean best "
                "val mIoU of the official training logs of the same recipe imported as reference runs "
                f"(semiseg reference import; {MISSING} = none imported)."]
    return "\n".join(out) + "\n"


def render_latex(comparison: pd.DataFrame, exp: str) -> str:
    """The published-vs-reproduced table as a booktabs ``table`` (nothing when no entry has a published figure)."""
    if comparison.empty:
        return f"% {exp}: no entry has a published figure in reports/published.yaml\n"
    from semiseg.reports.tables import latex_table

    display = comparison[COLUMNS].set_index("dataset")
    note = ("Δ = our mean − published figure (mIoU points). Published figures: official READMEs at the cited "
            "commits (reports/published.yaml).")
    return latex_table(display, f"{exp}: published vs reproduced (mIoU, %)", [note], f"tab:{exp}-published") + "\n"
