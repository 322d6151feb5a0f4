"""Paper-report features of reports/: published vs reproduced, LaTeX, cost, plots, MLflow report run, and a grid
spread over two real MLflow sqlite stores (runs written with tracking.log_runs_batch)."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from semiseg.reports import published as pub  # noqa: E402
from semiseg.reports.make_tables import main  # noqa: E402
from semiseg import tracking  # noqa: E402
from semiseg.cli import run_cli  # noqa: E402
from semiseg.errors import DataError  # noqa: E402
from conftest import SHARED, require_shared  # noqa: E402

SPEC = SHARED / "spec" / "paper_results.yaml"
EXP = "paper"
T0 = 1_700_000_000_000
HALF_HOUR = 1_800_000
N_LABELED = {"92": 92, "183": 183, "1_512": 232}
#: method → (train.gpus, derived.device)
RESOURCES = {"supervised": (1, "cpu"), "unimatch": (2, "cuda:0"), "corrmatch": (4, "cuda")}

# (store, dataset, backbone, method, split, seed, status, best_miou, {class: IoU})
RUNS = [
    ("a", "pascal", "resnet101", "supervised", "92", 0, "FINISHED", 45.0, {}),
    ("a", "pascal", "resnet101", "supervised", "92", 1, "FINISHED", 47.0, {}),
    ("b", "pascal", "resnet101", "supervised", "92", 2, "FINISHED", 46.0, {}),
    ("a", "pascal", "resnet101", "supervised", "183", 0, "FINISHED", 55.0, {"background": 90.0, "aeroplane": 20.0}),
    ("a", "pascal", "resnet101", "unimatch", "92", 0, "FINISHED", 74.0, {}),
    ("a", "pascal", "resnet101", "unimatch", "92", 1, "FINISHED", 75.0, {}),
    ("a", "pascal", "resnet101", "unimatch", "92", 2, "FINISHED", 76.0, {}),
    ("a", "pascal", "resnet101", "unimatch", "183", 0, "FAILED", None, {}),
    ("a", "pascal", "resnet101", "corrmatch", "92", 0, "RUNNING", None, {}),
    ("b", "pascal", "resnet101", "corrmatch", "183", 0, "FINISHED", 78.0, {"background": 92.0, "aeroplane": 60.0}),
    ("b", "pascal", "resnet101", "corrmatch", "183", 1, "FINISHED", 79.0, {"background": 94.0, "aeroplane": 70.0}),
    ("a", "coco", "xception", "unimatch", "1_512", 0, "FINISHED", 44.0, {}),
]


def _spec(i: int, dataset, backbone, method, split, seed, status, value, classes) -> dict:
    gpus, device = RESOURCES[method]
    cell = f"{dataset}-{backbone}-{method}-{split}-{seed}"
    metrics = {f"val/iou/{k}": v for k, v in classes.items()}
    if value is not None:
        metrics.update(best_miou=value, last_miou=value - 1.0, **{"val/miou": [value - 10.0, value - 3.0, value]})
    start = T0 + i * 10 * HALF_HOUR
    return {"name": cell, "status": status, "start_time": start, "end_time": start + HALF_HOUR, "metrics": metrics,
            "params": {"train.gpus": gpus, "derived.device": device},
            "tags": {"semiseg.exp": EXP, "semiseg.method": method, "semiseg.dataset": dataset,
                     "semiseg.split": split, "semiseg.backbone": backbone, "semiseg.seed": seed,
                     "semiseg.hash": f"h-{cell}", "semiseg.n_labeled": N_LABELED[split]}}


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("stores")
    uris = {name: f"sqlite:///{root / name / 'mlflow.db'}" for name in ("a", "b")}
    for name, uri in uris.items():
        specs = [_spec(i, *row[1:]) for i, row in enumerate(RUNS) if row[0] == name]
        assert tracking.log_runs_batch(uri, EXP, specs) == len(specs)
    return uris


def _run(argv: list[str]) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = run_cli(main, argv)
    assert code == 0, stderr.getvalue()
    return stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def merged(stores, tmp_path_factory):
    out = tmp_path_factory.mktemp("merged")
    stdout, stderr = _run(["--exp", EXP, "--tracking-uri", stores["a"], "--tracking-uri", stores["b"],
                           "--out", str(out)])
    return out, stdout, stderr


def _section(markdown: str, heading: str) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, body rows and note lines of the ``## heading`` section of a report."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = section.strip().splitlines()
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines if line.startswith("|")]
    return rows[0], rows[2:], [line for line in lines if line and not line.startswith("|")]


# ----------------------------------------------------------------------------------------------- published data


def test_published_file_matches_spec():
    """Every entry of reports/published.yaml is a figure of the collected official results, cited at its commit:
    a README figure, or a training-log figure (those, and only those, name their log in source_file)."""
    require_shared(SPEC)
    spec = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    commits = spec["meta"]["source_commits"]
    keys = ("method", "encoder", "dataset", "protocol", "split", "n_labeled", "miou", "metric", "source_repo")
    kinds: dict[tuple, set[str]] = {}
    for e in spec["entries"]:
        kinds.setdefault(tuple(str(e.get(k)) for k in keys), set()).add(e["source_kind"])
    ours = pub.load_published()
    assert len(ours) >= 50
    for entry in ours.to_dict("records"):
        kind = "training_log" if isinstance(entry["source_file"], str) else "readme"
        assert kind in kinds.get(tuple(str(entry[k]) for k in keys), set()), entry
        assert entry["source_commit"] == commits[entry["source_repo"]], entry
    assert not ours.duplicated(["method", "encoder", "dataset", "split"]).any()
    assert ours.loc[ours["encoder"].eq("xception65"), "backbone"].eq("xception").all()
    assert not ((ours["dataset"] == "coco") & ours["encoder"].str.startswith("resnet")).any()  # V1 COCO = Xception


def test_published_encoders_match_the_grids():
    """Each published (dataset, method, encoder, split) is a cell of a paper grid, or says in no_grid_cell why
    none runs it: an encoder label that disagrees with the grids fails here."""
    from semiseg.experiments.registry import expand, list_experiments, load_experiment

    cells = {(c.config.data.dataset, c.config.method, c.config.model.backbone, c.config.data.split)
             for name in list_experiments() for c in expand(load_experiment(name))}
    ours = pub.load_published()
    for entry in ours.to_dict("records"):
        key = (entry["dataset"], entry["method"], entry["backbone"], entry["split"])
        if isinstance(entry["no_grid_cell"], str):
            assert key not in cells, f"{key} is a grid cell: drop its no_grid_cell ({entry['no_grid_cell']})"
        else:
            assert key in cells, f"{key}: no grid cell runs it; fix the encoder label or give no_grid_cell"
    blended = ours[(ours["dataset"] == "pascal") & (ours["protocol"] == "blended")]
    assert set(zip(blended["method"], blended["backbone"])) == {("unimatch", "resnet101"), ("prevmatch", "resnet50")}
    ade_sup = ours[(ours["dataset"] == "ade20k") & (ours["method"] == "supervised")]
    assert set(ade_sup["backbone"]) == {"dinov2_base"} and set(ade_sup["split"]) == {"1_64", "1_32", "1_16", "1_8"}


def test_published_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries:\n- {method: unimatch, miou: 70}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.yaml: entry 0 lacks encoder"):
        pub.load_published(bad)
    entry = {k: "x" for k in pub.FIELDS} | {"miou": 170}
    bad.write_text(yaml.safe_dump({"entries": [entry]}), encoding="utf-8")
    with pytest.raises(DataError, match=r"miou=170"):
        pub.load_published(bad)
    bad.write_text(yaml.safe_dump({"entries": [entry | {"miou": 70, "grid": "none"}]}), encoding="utf-8")
    with pytest.raises(DataError, match=r"entry 0 has unknown key\(s\) grid; valid: .*no_grid_cell"):
        pub.load_published(bad)
    bad.write_text(yaml.safe_dump({"entries": [entry | {"miou": 70, "no_grid_cell": True}]}), encoding="utf-8")
    with pytest.raises(DataError, match=r"entry 0 no_grid_cell=True; expected a non-empty string"):
        pub.load_published(bad)


# ----------------------------------------------------------------------------------------------- merged stores


def test_merged_table_cell_by_cell(merged):
    _, stdout, _ = merged
    header, rows, notes = _section(stdout, "pascal / resnet101")
    assert header == ["method", "1/16 (92)", "1/8 (183)"]  # Pascal HQ columns as in the papers
    assert rows == [
        ["supervised", "46.0 ± 1.0 (n=3)", "55.0 (n=1)"],  # seeds 0, 1 from store a, seed 2 from store b
        ["unimatch", "**75.0 ± 1.0 (n=3)**", "—"],
        ["corrmatch", "—", "**78.5 ± 0.7 (n=2)**"],
        ["Δ vs supervised: unimatch", "+29.0* (p<0.001, n=3/3)", "—"],
        ["Δ vs supervised: corrmatch", "—", "+23.5 (untested, n=2/1)"],
    ]
    assert "— : 1 cell running/interrupted, 1 failed" in notes
    # 4 supervised runs × 0.5 h on cpu; unimatch 4 ended runs (failed included) × 0.5 h × 2 GPUs;
    # corrmatch 2 × 0.5 h × 4 GPUs; the running corrmatch run has not ended and costs nothing yet.
    assert any(n.startswith("Cost: 8.00 GPU-h + 2.00 CPU-h over 10 runs") for n in notes), notes


def test_published_vs_reproduced(merged):
    out, stdout, _ = merged
    header, rows, notes = _section(stdout, "Published vs reproduced")
    assert header == ["dataset", "encoder", "method", "split", "ours", "published", "Δ (ours − published)",
                      "published metric", "source", "official log best"]
    got = {(r[0], r[1], r[2], r[3]): r[4:7] for r in rows}
    assert got == {
        ("coco", "xception", "unimatch", "1/512 (232)"): ["44.0 (n=1)", "31.9", "+12.1"],  # xception ↔ xception65
        ("pascal", "resnet101", "supervised", "1/16 (92)"): ["46.0 ± 1.0 (n=3)", "45.1", "+0.9"],
        ("pascal", "resnet101", "supervised", "1/8 (183)"): ["55.0 (n=1)", "55.3", "-0.3"],
        ("pascal", "resnet101", "unimatch", "1/16 (92)"): ["75.0 ± 1.0 (n=3)", "75.2", "-0.2"],
        ("pascal", "resnet101", "unimatch", "1/8 (183)"): ["—", "77.2", "—"],
        ("pascal", "resnet101", "corrmatch", "1/16 (92)"): ["—", "76.4", "—"],
        ("pascal", "resnet101", "corrmatch", "1/8 (183)"): ["78.5 ± 0.7 (n=2)", "78.5", "+0.0"],
    }
    sources = {r[2]: r[8] for r in rows}
    assert sources["supervised"] == "LiheYoung/UniMatch@0324f3d"
    assert sources["corrmatch"] == "BBBBchan/CorrMatch@44f9f9e"
    csv = pd.read_csv(out / f"{EXP}_published.csv")
    corr = csv[csv["method"].eq("corrmatch") & csv["split"].eq("1/8 (183)")].iloc[0]
    assert corr["diff"] == pytest.approx(0.0) and corr["miou"] == 78.5


def test_single_store_differs_from_merge(stores, tmp_path):
    stdout, _ = _run(["--exp", EXP, "--tracking-uri", stores["a"], "--out", str(tmp_path), "--no-log"])
    _, rows, notes = _section(stdout, "pascal / resnet101")
    assert rows[0] == ["supervised", "46.0 ± 1.4 (n=2)", "**55.0 (n=1)**"]  # the only value of its column
    assert rows[2] == ["corrmatch", "—", "—"]
    assert "— : 1 cell running/interrupted, 1 failed, 1 entry not run" in notes
    assert tracking.runs_frame(stores["a"], f"{EXP}-reports").shape[0] == 1  # only the merged report's run


def test_csv_costs(stores, tmp_path):
    _run(["--exp", EXP, "--tracking-uri", stores["a"], "--tracking-uri", stores["b"], "--out", str(tmp_path),
          "--format", "csv", "--no-log"])
    rows = pd.read_csv(tmp_path / f"{EXP}.csv", dtype={"split": str}).set_index(["dataset", "method", "split"])
    assert rows.loc[("pascal", "unimatch", "92"), ["gpu_hours", "cpu_hours", "runs"]].tolist() == [3.0, 0.0, 3]
    assert rows.loc[("pascal", "unimatch", "183"), ["gpu_hours", "runs"]].tolist() == [1.0, 1]  # the failed run
    assert rows.loc[("pascal", "supervised", "92"), ["gpu_hours", "cpu_hours", "runs"]].tolist() == [0.0, 1.5, 3]
    assert rows.loc[("pascal", "corrmatch", "92"), ["gpu_hours", "runs"]].tolist() == [0.0, 0]


# ----------------------------------------------------------------------------------------------- latex


def test_latex_output(stores, tmp_path):
    _run(["--exp", EXP, "--tracking-uri", stores["a"], "--tracking-uri", stores["b"], "--out", str(tmp_path),
          "--format", "latex", "--no-log"])
    tex = (tmp_path / f"{EXP}.tex").read_text(encoding="utf-8")
    assert not (tmp_path / f"{EXP}.md").exists()
    pascal = tex.split(r"\caption{paper: pascal / resnet101")[1].split(r"\end{table}")[0]
    lines = [line.strip() for line in pascal.splitlines()]
    body = lines[lines.index(r"\toprule"):lines.index(r"\bottomrule") + 1]
    assert body == [
        r"\toprule",
        r"method & 1/16 (92) & 1/8 (183) \\",
        r"\midrule",
        r"supervised & 46.0 $\pm$ 1.0 (n=3) & 55.0 (n=1) \\",
        r"unimatch & \textbf{75.0 $\pm$ 1.0 (n=3)} & --- \\",
        r"corrmatch & --- & \textbf{78.5 $\pm$ 0.7 (n=2)} \\",
        r"\midrule",
        r"$\Delta$ vs supervised: unimatch & +29.0* (p$<$0.001, n=3/3) & --- \\",
        r"$\Delta$ vs supervised: corrmatch & --- & +23.5 (untested, n=2/1) \\",
        r"\bottomrule",
    ]
    assert r"\begin{tabular}{lrr}" in pascal and r"\footnotesize" in pascal and "best\\_miou" in pascal
    assert r"coco & xception & unimatch & 1/512 (232) & 44.0 (n=1) & 31.9 & +12.1" in tex
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 3
    for raw in ("**", "±", "—", "Δ"):
        assert raw not in tex.split("\n", 1)[1], raw


# ----------------------------------------------------------------------------------------------- plots + report run


def test_plots_and_report_run(merged, stores):
    out, _, stderr = merged
    names = ["paper_miou_vs_labels.png", "paper_pascal_resnet101_curves.png", "paper_pascal_resnet101_class_iou.png",
             "paper_coco_xception_curves.png"]
    for name in names:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 15_000, name
        assert name in stderr
    assert not (out / "paper_coco_xception_class_iou.png").exists()  # no per-class metrics logged there
    reports = tracking.search_cells(stores["a"], f"{EXP}-reports")
    assert [r.tags.get("semiseg.report_of") for r in reports] == [EXP]
    assert set(tracking.list_artifacts(stores["a"], reports[0].run_id)) >= {"paper.md", "paper_published.csv", *names}
    assert tracking.search_cells(stores["b"], f"{EXP}-reports") == []


def test_class_iou_and_curve_data(stores):
    from semiseg.reports import tables as tb
    from semiseg.reports.make_tables import load_runs

    tables = {t.dataset: t for t in tb.build_tables(load_runs([stores["a"], stores["b"]], EXP))}
    split, ious = tb.class_iou(tables["pascal"])
    assert split == "1/8 (183)"
    assert ious.to_dict() == {"supervised": {"background": 90.0, "aeroplane": 20.0},
                              "corrmatch": {"background": 93.0, "aeroplane": 65.0}}
    runs = tb.curve_runs(tables["pascal"])
    assert runs[["method", "split", "seed"]].values.tolist() == [
        ["supervised", "92", "0"], ["unimatch", "92", "0"], ["corrmatch", "183", "0"], ["supervised", "183", "0"]]
    corr = runs[runs["method"].eq("corrmatch")].iloc[0]
    assert corr["store"] == stores["b"]
    assert tracking.metric_history(corr["store"], corr["run_id"], "val/miou") == [(0, 68.0), (1, 75.0), (2, 78.0)]


# ----------------------------------------------------------------------------------------------- runs_frame's SQL read


def _frame_store(tmp_path) -> tuple[str, list[str]]:
    """A sqlite store whose runs exercise what runs_frame reads: all statuses, a deleted run, a NaN and an infinite
    metric, a metric history, tags outside CELL_TAGS, extra params, a missing cell tag and param, two runs started
    in the same millisecond, and a second experiment with a run of its own."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    specs = [_spec(i, *row[1:]) for i, row in enumerate(RUNS)]
    for spec in specs:
        spec["tags"].update({"semiseg.recipe": "r-" + spec["name"], "semiseg.git_commit": "abc", "note": "x"})
        spec["params"].update({f"cfg.p{j}": j for j in range(30)})
    specs[0]["metrics"].update(nan_metric=float("nan"), inf_metric=float("inf"))
    specs[1]["status"] = "KILLED"
    del specs[2]["tags"]["semiseg.n_labeled"], specs[2]["params"]["derived.device"]
    specs[4]["start_time"] = specs[3]["start_time"]  # same start: ordered by run id
    tracking.log_runs_batch(uri, EXP, specs)
    tracking.log_runs_batch(uri, "other", specs[:2])
    ids = tracking.runs_frame(uri, EXP, sql=False)["run_id"].tolist()
    tracking._client(uri).delete_run(ids[5])
    return uri, ids


def test_runs_frame_sql_equals_client(tmp_path):
    uri, ids = _frame_store(tmp_path)
    fast, client = tracking.runs_frame(uri, EXP), tracking.runs_frame(uri, EXP, sql=False)
    assert tracking.sql_runs(uri, EXP) is not None  # the SQL path was taken
    pd.testing.assert_frame_equal(fast, client)
    assert fast["run_id"].tolist() == ids[:5] + ids[6:] and len(fast) == len(RUNS) - 1  # the deleted run left out
    assert fast["start_time"].is_monotonic_decreasing
    assert list(fast.columns[:len(tracking.FRAME_COLUMNS)]) == list(tracking.FRAME_COLUMNS)
    assert set(fast["status"]) == {"FINISHED", "FAILED", "RUNNING", "KILLED"}
    assert fast["metrics.nan_metric"].isna().sum() == len(fast) and fast["metrics.inf_metric"].max() > 1e300
    assert fast["n_labeled"].isna().sum() == 1 and fast["derived.device"].isna().sum() == 1
    assert len(tracking.runs_frame(uri, "other")) == 2 and tracking.runs_frame(uri, "missing").empty
    pd.testing.assert_frame_equal(tracking.runs_frame(uri, "missing"), tracking.runs_frame(uri, "missing", sql=False))


def test_runs_frame_sql_schema_mismatch(tmp_path):
    """A store whose tables are not the installed MLflow's is never read by SQL: the client path decides."""
    import shutil
    import sqlite3

    from mlflow.exceptions import MlflowException

    _frame_store(tmp_path)
    db = shutil.copy(tmp_path / "mlflow.db", tmp_path / "copy.db")  # a store no client of this process opened
    uri = f"sqlite:///{db}"
    with sqlite3.connect(db) as con:  # a store of another MLflow version
        head = con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        con.execute("UPDATE alembic_version SET version_num = 'an_older_one'")
    assert tracking.sql_runs(uri, EXP) is None
    with pytest.raises(MlflowException, match="out-of-date database schema"):
        tracking.runs_frame(uri, EXP)
    with sqlite3.connect(db) as con:  # right revision, but a table differs: the SQL error is caught
        con.execute("UPDATE alembic_version SET version_num = ?", (head,))
        con.execute("ALTER TABLE latest_metrics RENAME COLUMN is_nan TO nan_flag")
    assert tracking.sql_runs(uri, EXP) is None
    absent = tmp_path / "absent.db"
    assert tracking.sql_runs(f"sqlite:///{absent}", EXP) is None and not absent.exists()  # nothing created
    assert tracking.sql_runs("http://127.0.0.1:9/", EXP) is None  # a tracking server: the client path
