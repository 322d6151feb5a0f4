"""Tests of reports/: paper tables and plot built from a real MLflow sqlite store made with RunTracker."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from semiseg.reports import tables as tb  # noqa: E402
from semiseg.reports.make_tables import main  # noqa: E402
from semiseg.cli import run_cli  # noqa: E402
from semiseg.tracking import RunTracker  # noqa: E402

EXP = "tables_demo"  # an MLflow experiment without an experiment file: each entry shows its most-seeded recipe
N_LABELED = {"1_32": 24, "92": 92, "all": 768, "1_16": 186}

# (method, split, seed, status, best_miou); rows are logged in this order, so later rows are newer re-runs.
RUNS = [
    ("supervised", "all", 0, "FINISHED", 70.0),
    ("supervised", "all", 1, "FINISHED", 71.0),
    ("supervised", "1_32", 0, "FINISHED", 40.0),
    ("supervised", "1_32", 1, "FINISHED", 42.0),
    ("supervised", "1_32", 2, "FINISHED", 44.0),
    ("supervised", "92", 0, "FINISHED", 50.0),
    ("fixmatch", "1_32", 0, "FINISHED", 55.0),
    ("fixmatch", "1_32", 1, "FINISHED", 56.0),
    ("fixmatch", "1_32", 2, "FINISHED", 57.5),
    ("fixmatch", "92", 0, "FINISHED", 60.0),
    ("fixmatch", "92", 1, "FINISHED", 10.0),   # superseded by the newer finished re-run below
    ("fixmatch", "92", 1, "FINISHED", 62.0),
    ("fixmatch", "92", 0, "FAILED", 99.0),     # newer but failed: the finished 60.0 still counts
    ("fixmatch", "all", 0, "FAILED", 30.0),    # only a failed run → "—", 1 failed
    ("unimatch", "1_32", 0, "FINISHED", 58.0),
    ("unimatch", "1_32", 1, "FINISHED", 60.0),
    ("unimatch", "1_32", 2, "RUNNING", None),  # left running → not in n
    ("unimatch", "92", 0, "FINISHED", 65.0),
    ("unimatch", "all", 0, "KILLED", None),    # interrupted → "—"
    ("zeta", "92", 0, "FINISHED", 63.0),       # a method outside METHOD_ORDER; its other splits never ran
    ("alpha", "92", 0, "FINISHED", 51.0),
]
# A second (dataset, backbone) table without a supervised row.
OTHER = [("fixmatch", "1_16", 0, "FINISHED", 70.0), ("fixmatch", "1_16", 1, "FINISHED", 72.0)]


def _log(uri: str, method: str, split: str, seed: int, status: str, value: float | None,
         dataset: str = "pascal", backbone: str = "resnet101") -> None:
    tracker = RunTracker(uri, EXP)
    cell = f"{dataset}-{backbone}-{method}-{split}-{seed}"
    tracker.create(cell, {"semiseg.exp": EXP, "semiseg.method": method, "semiseg.dataset": dataset,
                         "semiseg.split": split, "semiseg.backbone": backbone, "semiseg.seed": seed,
                         "semiseg.hash": f"h-{cell}", "semiseg.n_labeled": N_LABELED[split]})
    for epoch in range(2):
        tracker.log({"val/miou": (value or 20.0) - 5 + epoch}, step=epoch)
    if value is not None:
        tracker.log({"best_miou": value, "last_miou": value - 1.0}, step=1)
    if status != "RUNNING":
        tracker.finish(status)
    time.sleep(0.005)  # distinct start times, so the newest re-run is well defined


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    for row in RUNS:
        _log(uri, *row)
    for row in OTHER:
        _log(uri, *row, dataset="cityscapes", backbone="resnet50")
    return uri


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    """Run the CLI once (markdown) and parse the pascal table into {row: {column: text}}."""
    out = tmp_path_factory.mktemp("out")
    stdout, stderr = _run(main, ["--exp", EXP, "--tracking-uri", store, "--out", str(out)])
    return out, stdout, stderr


def _run(fn, argv):
    import contextlib
    import io

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = run_cli(fn, argv)
    assert code == 0, stderr.getvalue()
    return stdout.getvalue(), stderr.getvalue()


def _parse(markdown: str, heading: str) -> tuple[list[str], dict[str, dict[str, str]], list[str]]:
    """Header, {row label: {column label: cell}} and the note paragraphs of one table of the report."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.strip().splitlines()]
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines if line.startswith("|")]
    header = rows[0]
    assert set(rows[1][0]) <= set(":-|")
    table = {r[0]: dict(zip(header[1:], r[1:])) for r in rows[2:]}
    notes = [line for line in lines if line and not line.startswith("|")]
    return header, table, notes


# ----------------------------------------------------------------------------------------------- markdown


def test_markdown_cells_rows_and_columns(report):
    out, stdout, _ = report
    assert (out / f"{EXP}.md").read_text(encoding="utf-8") == stdout
    header, table, _ = _parse(stdout, "pascal / resnet101")
    assert header == ["method", "1/32 (24)", "1/16 (92)", "all (768)"]  # ordered by n_labeled, paper labels
    methods = ["supervised", "fixmatch", "unimatch", "alpha", "zeta"]
    assert list(table)[:5] == methods
    expected = {
        "supervised": ["42.0 ± 2.0 (n=3)", "50.0 (n=1)", "**70.5 ± 0.7 (n=2)**"],
        # 1_32: mean 56.17, sample std 1.26; 92: newest finished re-run (62.0) replaces 10.0 → 61.0 ± 1.4
        "fixmatch": ["56.2 ± 1.3 (n=3)", "61.0 ± 1.4 (n=2)", "—"],
        "unimatch": ["**59.0 ± 1.4 (n=2)**", "**65.0 (n=1)**", "—"],
        "alpha": ["—", "51.0 (n=1)", "—"],
        "zeta": ["—", "63.0 (n=1)", "—"],
    }
    for method, cells in expected.items():
        assert [table[method][c] for c in header[1:]] == cells, method


def test_markdown_delta_rows(report):
    _, stdout, _ = report
    header, table, _ = _parse(stdout, "pascal / resnet101")
    delta = {k[len("Δ vs supervised: "):]: [v[c] for c in header[1:]] for k, v in table.items()
             if k.startswith("Δ vs supervised: ")}
    # Welch's t-test over the seeds where both sides have two or more; * = p < 0.05
    assert delta == {
        "fixmatch": ["+14.2* (p=0.001, n=3/3)", "+11.0 (untested, n=2/1)", "—"],
        "unimatch": ["+17.0* (p=0.002, n=2/3)", "+15.0 (untested, n=1/1)", "—"],
        "alpha": ["—", "+1.0 (untested, n=1/1)", "—"],
        "zeta": ["—", "+13.0 (untested, n=1/1)", "—"],
    }


def test_gain_p_value_welch_and_bootstrap(monkeypatch):
    import builtins

    a, b = [55.0, 56.0, 57.5], [40.0, 42.0, 44.0]
    welch = tb.gain_p_value(a, b)
    assert 0 < welch < 0.01 and tb.gain_p_value(a, a) == pytest.approx(1.0)
    assert tb.gain_p_value([1.0], b) != tb.gain_p_value([1.0], b)  # NaN: one seed cannot be tested
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    assert tb.gain_p_value(a, b) < 0.01  # the bootstrap agrees on a clear gain
    assert tb.gain_p_value([50.0, 52.0, 51.0], [50.5, 51.5, 51.0]) > 0.3  # and on noise


def test_markdown_footnotes(report):
    _, stdout, _ = report
    _, _, notes = _parse(stdout, "pascal / resnet101")
    assert any("sample std (ddof=1)" in n and "best_miou" in n for n in notes)
    # running (unimatch 1_32 seed 2) + KILLED (unimatch all); failed (fixmatch all);
    # alpha and zeta never ran 1_32 / all. fixmatch 92 seed 0 failed re-run is not counted: it has a finished run.
    assert "— : 2 cells running/interrupted, 1 failed, 4 entries not run" in notes


def test_second_table_without_supervised(report):
    _, stdout, _ = report
    header, table, notes = _parse(stdout, "cityscapes / resnet50")
    assert header == ["method", "1/16 (186)"]
    assert table == {"fixmatch": {"1/16 (186)": "**71.0 ± 1.4 (n=2)**"}}
    assert not any(n.startswith("—") for n in notes)
    assert stdout.index("## cityscapes / resnet50") < stdout.index("## pascal / resnet101")


def test_metric_last(store, tmp_path):
    stdout, _ = _run(main, ["--exp", EXP, "--tracking-uri", store, "--out", str(tmp_path), "--metric", "last"])
    header, table, notes = _parse(stdout, "pascal / resnet101")
    assert table["supervised"]["1/32 (24)"] == "41.0 ± 2.0 (n=3)"
    assert any("last_miou" in n for n in notes)


# ----------------------------------------------------------------------------------------------- csv + png


def test_csv_output(store, tmp_path):
    _run(main, ["--exp", EXP, "--tracking-uri", store, "--out", str(tmp_path), "--format", "csv"])
    rows = pd.read_csv(tmp_path / f"{EXP}.csv", keep_default_na=False, na_values=[""])
    assert not (tmp_path / f"{EXP}.md").exists()
    assert list(rows.columns) == tb.CSV_COLUMNS
    pascal = rows[rows["dataset"].eq("pascal")]
    assert pascal["method"].drop_duplicates().tolist() == ["supervised", "fixmatch", "unimatch", "alpha", "zeta"]
    fix = pascal.set_index(["method", "split"]).loc[("fixmatch", "1_32")]
    assert fix["split_label"] == "1/32 (24)" and fix["n_labeled"] == 24 and fix["metric"] == "best_miou"
    assert fix["mean"] == pytest.approx(56.1667, abs=1e-3) and fix["std"] == pytest.approx(1.2583, abs=1e-3)
    assert fix["n"] == 3 and fix["delta_vs_supervised"] == pytest.approx(14.1667, abs=1e-3)
    assert fix["cell"] == "56.2 ± 1.3 (n=3)" and not bool(fix["best"])
    failed = pascal.set_index(["method", "split"]).loc[("fixmatch", "all")]
    assert failed["n"] == 0 and failed["failed"] == 1 and failed["cell"] == "—" and pd.isna(failed["mean"])


def test_plot_written(report):
    out, _, stderr = report
    png = out / f"{EXP}_miou_vs_labels.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000
    assert str(png) in stderr


# ----------------------------------------------------------------------------------------------- errors


def test_unknown_experiment_exits_2(store, tmp_path, capsys):
    code = run_cli(main, ["--exp", "nope", "--tracking-uri", store, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "'nope'" in err and store in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_unknown_experiment_lists_existing_ones(store, tmp_path, capsys):
    assert run_cli(main, ["--exp", "nope", "--tracking-uri", store, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "existing experiments:" in err and EXP in err.split("existing experiments:")[1]


def test_missing_store_exits_2_without_creating_it(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'absent.db'}"
    assert run_cli(main, ["--exp", EXP, "--tracking-uri", uri, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and EXP in err
    assert not (tmp_path / "absent.db").exists()


def test_metric_not_logged_exits_2(store, tmp_path, capsys):
    assert run_cli(main, ["--exp", EXP, "--tracking-uri", store, "--out", str(tmp_path), "--metric", "ema"]) == 2
    err = capsys.readouterr().err
    assert "best_miou_ema" in err and "best_miou, last_miou" in err


def test_script_entry_point(store, tmp_path):
    """``python reports/make_tables.py`` works from the project root without installing the package."""
    proc = subprocess.run([sys.executable, "reports/make_tables.py", "--exp", EXP, "--tracking-uri", store,
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| supervised | 42.0 ± 2.0 (n=3) |" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "semiseg.reports.make_tables", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for option in ("--exp", "--tracking-uri", "--format", "--out", "--metric"):
        assert option in proc.stdout
    assert proc.stdout.count("e.g.") >= 5 and "python -m semiseg.reports.make_tables" in proc.stdout


# ----------------------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize("split,n,label", [("1_32", 24, "1/32 (24)"), ("92", 92, "92"), ("all", 768, "all (768)"),
                                           ("u2pl_1_8", 1323, "u2pl 1/8 (1323)"), ("1_4", None, "1/4")])
def test_split_label(split, n, label):
    assert tb.split_label(split, n) == label


@pytest.mark.parametrize("split,n,label", [("92", 92, "1/16 (92)"), ("1464", 1464, "Full (1464)"),
                                           ("732", None, "1/2 (732)"), ("200", 200, "200"),
                                           ("1_16", 662, "1/16 (662)")])
def test_split_label_pascal_paper_columns(split, n, label):
    assert tb.split_label(split, n, "pascal") == label


def test_method_order():
    assert tb.method_order(["zeta", "corrmatch", "supervised", "alpha", "unimatch_v2"]) == [
        "supervised", "unimatch_v2", "corrmatch", "alpha", "zeta"]


def test_select_cells_newest_finished_then_newest():
    frame = pd.DataFrame({
        "run_id": ["a", "b", "c", "d", "e"], "hash": ["h1", "h1", "h1", "h2", "h2"],
        "state": ["finished", "finished", "failed", "failed", "interrupted"], "start_time": [1, 2, 3, 1, 2],
        "method": "m", "dataset": "d", "split": "s", "backbone": "b", "seed": "0", "n_labeled": "10",
    })
    cells = tb.select_cells(frame).set_index("hash")["run_id"]
    assert cells.to_dict() == {"h1": "b", "h2": "e"}


def test_format_value_and_delta():
    mean = pd.Series([61.25, 61.3, float("nan")])
    std = pd.Series([0.84, float("nan"), float("nan")])
    assert tb.format_value(mean, std, pd.Series([3, 1, 0])).tolist() == ["61.2 ± 0.8 (n=3)", "61.3 (n=1)", "—"]
    assert tb.format_delta(pd.Series([5.21, -0.04, float("nan")])).tolist() == ["+5.2", "+0.0", "—"]


def test_per_seed_note_lists_values_spreads_and_paired_gains(report, store):
    """A grid of few seeds lists each seed's value, each entry's spread and each method's gain over supervised
    on the same seed (seed 2 of unimatch 1/32 is still running: no value, no pair)."""
    _, stdout, _ = report
    _, _, notes = _parse(stdout, "pascal / resnet101")
    assert ("Per seed, 1/32 (24): supervised s0 40.0, s1 42.0, s2 44.0 (spread 4.0); fixmatch s0 55.0, s1 56.0, "
            "s2 57.5 (spread 2.5), minus supervised on the same seed: +15.0, +14.0, +13.5 (smallest +13.5; the "
            "larger spread 4.0); unimatch s0 58.0, s1 60.0 (spread 2.0), minus supervised on the same seed: +18.0, "
            "+18.0 (smallest +18.0; the larger spread 4.0).") in notes
    _, _, other = _parse(stdout, "cityscapes / resnet50")
    assert "Per seed, 1/16 (186): fixmatch s0 70.0, s1 72.0 (spread 2.0)." in other
    many = pd.DataFrame({"n": [tb.SEED_NOTE_MAX + 1]})
    assert tb.seed_note(pd.DataFrame(), many, "best") == []  # a big grid keeps to mean ± std
