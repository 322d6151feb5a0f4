"""mIoU vs number of labeled images: one subplot per (dataset, backbone), one line per method.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so it works headless.
"""

from __future__ import annotations

import math
from pathlib import Path

from semiseg.reports.tables import METHOD_ORDER, Table, method_order

_MARKERS = "osD^vP*Xhp<>"


def plot_miou_vs_labels(tables: list[Table], path: str | Path, exp: str = "") -> Path:
    """Write the figure of ``tables`` to ``path`` (PNG) and return the path.

    x = number of labeled images (log scale, ticks labelled with the split), y = mean of the metric over
    seeds with error bars = sample std (none for a single seed). Colours and markers follow the method,
    consistently across subplots.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    path = Path(path)
    count = max(len(tables), 1)
    ncols = min(3, count)
    nrows = math.ceil(count / ncols)
    fig = Figure(figsize=(5.6 * ncols, 4.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()

    style = _style({m for t in tables for m in t.stats["method"]})

    metric = tables[0].metric if tables else "metric"
    for ax, table in zip(axes, tables):
        data = table.stats[table.stats["n"].gt(0) & table.stats["n_labeled"].notna()]
        ax.set_title(table.title)
        ax.set_xlabel("labeled images (log scale)")
        ax.set_ylabel(f"{metric} (mIoU, %)")
        if data.empty:
            ax.text(0.5, 0.5, "no finished runs with a known\nnumber of labeled images", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for method in method_order(data["method"].unique()):
            rows = data[data["method"].eq(method)].sort_values("n_labeled")
            color, marker = style[method]
            ax.errorbar(rows["n_labeled"], rows["mean"], yerr=rows["std"].fillna(0.0), label=method, color=color,
                        marker=marker, markersize=5, capsize=3, linewidth=1.6, elinewidth=1)
        ticks = data.drop_duplicates("n_labeled").sort_values("n_labeled")
        ax.set_xscale("log")
        ax.set_xticks(ticks["n_labeled"].tolist(), ticks["split_label"].tolist(),
                      rotation=30 if len(ticks) > 4 else 0, fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
        low, high = ticks["n_labeled"].min(), ticks["n_labeled"].max()
        ax.set_xlim(low / 1.5, high * 1.5)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in axes[len(tables):]:
        ax.set_visible(False)
    fig.suptitle(f"{exp + ': ' if exp else ''}{metric} vs labeled images\n(mean ± sample std over seeds)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _style(methods) -> dict:
    """(colour, marker) per method; a known method keeps its colour in every figure (its rank in METHOD_ORDER)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    others = sorted(set(map(str, methods)).difference(METHOD_ORDER))
    rank = {m: i for i, m in enumerate([*METHOD_ORDER, *others])}
    return {m: (cmap(rank[m] % 10), _MARKERS[rank[m] % len(_MARKERS)]) for m in method_order(methods)}


def plot_training_curves(curves: dict[tuple[str, str], list[tuple[int, float]]], path: str | Path,
                         title: str, official: dict[tuple[str, str], list[tuple[int, float]]] | None = None) -> Path:
    """Validation mIoU per epoch: one subplot per split, one line per method; ``curves`` maps
    (method, split label) → [(epoch, mIoU)] in the order the subplots should follow. ``official`` (same keys, epochs
    0-based like the runs' steps) overlays the official logs' curve of the same cell, dashed in the method's colour."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    splits = list(dict.fromkeys(split for _, split in curves))
    ncols = min(3, max(len(splits), 1))
    nrows = math.ceil(max(len(splits), 1) / ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    style = _style({m for m, _ in curves})
    for ax, split in zip(axes, splits):
        for (method, s), points in curves.items():
            if s != split or not points:
                continue
            steps, values = zip(*sorted(points))
            color, marker = style[method]
            ax.plot(steps, values, label=method, color=color, marker=marker, markersize=3, linewidth=1.4)
            reference = (official or {}).get((method, s))
            if reference:
                ref_steps, ref_values = zip(*reference)
                ax.plot(ref_steps, ref_values, label=f"{method} (official)", color=color, linestyle="--",
                        linewidth=1.1)
        ax.set_title(split)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("val mIoU (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in axes[len(splits):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def plot_class_iou(ious, path: str | Path, title: str) -> Path:
    """Grouped bars of per-class IoU: x = classes, one bar per method (``ious``: index class, columns methods)."""
    import numpy as np
    from matplotlib.figure import Figure

    n_cls, n_meth = ious.shape
    fig = Figure(figsize=(max(6.0, 0.45 * n_cls * max(n_meth, 1) ** 0.5 + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    style = _style(ious.columns)
    width = 0.8 / max(n_meth, 1)
    x = np.arange(n_cls)
    for i, method in enumerate(ious.columns):
        ax.bar(x + (i - (n_meth - 1) / 2) * width, ious[method].to_numpy(), width, label=method,
               color=style[method][0])
    ax.set_xticks(x, list(ious.index), rotation=45 if n_cls > 6 else 0, ha="right" if n_cls > 6 else "center",
                  fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(n_meth, 4))
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
