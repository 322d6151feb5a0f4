"""Official training logs → typed records → reference runs in a real MLflow store (synthetic logs per format)."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from semiseg import reference
from semiseg.official_logs import LogError, parse_log
from semiseg.tracking import REFERENCE_EXPERIMENT, metric_history, reference_runs
from tests.official_log_writer import config_of, write_log

CURVE = [60.0, 65.5, 70.25, 69.0]


def test_v1_2022_infers_gpus_split_and_method(tmp_path):
    path = write_log(tmp_path / "High-Quality-Split-Size321/ResNet-101/183-run2.log", "unimatch-v1-2022",
                     config_of("unimatch-v1-2022", epochs=4), CURVE, iters_per_epoch=1300, s_per_iter=0.5,
                     eval_s=20.0, preamble="srun: job 5 scheduled")
    log = parse_log(path.read_text(), str(path), reference.stream_size)
    assert (log.format, log.method, log.dataset, log.split, log.backbone, log.run) == \
        ("unimatch-v1-2022", "unimatch", "pascal", "183", "resnet101", 2)
    # 10399 unlabeled images / 4 GPUs / batch 2 = 1300 iterations: a loss line every 162, as written
    assert (log.gpus, log.gpus_inferred, log.iters_per_epoch, log.log_interval) == (4, True, 1300, 162)
    assert any("inferred" in note for note in log.notes)
    assert log.curve() == list(enumerate(CURVE))
    assert log.seconds_per_iter == pytest.approx(0.5, abs=1e-3)
    assert log.eval_seconds == pytest.approx(20.0, abs=0.2)
    assert log.epoch_seconds[1] == pytest.approx(1300 * 0.5 + 20 + 1, abs=0.01)
    assert log.best().epoch == 2 and log.best().per_class == {"background": 70.25, "disk": 71.25, "rectangle": 72.25}
    assert log.recipe["data.crop_size"] == 321 and log.recipe["train.gpus"] == 4
    assert log.recipe["model.output_stride"] == 16 and log.recipe["loss.criterion"] == "ce"
    assert log.ending == "complete"
    assert log.gpu_hours_per_epoch == pytest.approx(4 * (1300 * 0.5 + 20) / 3600, rel=1e-3)


def test_v1_2022_without_a_split_size_reports_the_gpu_count_as_unknown(tmp_path):
    path = write_log(tmp_path / "92.log", "unimatch-v1-2022", config_of("unimatch-v1-2022", dataset="mine"), CURVE)
    log = parse_log(path.read_text(), str(path), reference.stream_size)
    assert log.gpus is None and log.gpu_hours_per_epoch is None
    assert log.problems == ["GPU count: not printed, and no split size is known for mine/92"]


def test_v1_2023_and_prevmatch_read_their_printed_settings(tmp_path):
    path = write_log(tmp_path / "92.log", "unimatch-v1-2023",
                     config_of("unimatch-v1-2023", backbone="resnet50", epochs=4), CURVE, iters_per_epoch=1311)
    log = parse_log(path.read_text(), str(path), reference.stream_size)
    assert (log.format, log.method, log.backbone, log.gpus, log.gpus_inferred, log.iters_per_epoch, log.ending) \
        == ("unimatch-v1-2023", "unimatch", "resnet50", 4, False, 1311, "complete")
    path = write_log(tmp_path / "u2pl.log", "prevmatch",
                     config_of("prevmatch", split="u2pl_1_16", method_folder="prevmatch", crop=513, batch=8, ngpus=1,
                               epochs=4), CURVE, iters_per_epoch=1240)
    log = parse_log(path.read_text(), str(path), reference.stream_size)
    assert (log.format, log.method, log.split, log.gpus, log.iters_per_epoch) == \
        ("prevmatch", "prevmatch", "u2pl_1_16", 1, 1240)
    assert log.recipe["train.amp"] == "fp16" and log.recipe["data.crop_size"] == 513


def test_v2_keeps_student_and_ema(tmp_path):
    ema = [62.0, 66.0, 69.0, 71.5]
    path = write_log(tmp_path / "v2.log", "unimatch-v2",
                     config_of("unimatch-v2", backbone="dinov2_base", method_folder="unimatch_v2", crop=518, batch=4,
                               epochs=4, lr=5e-6), CURVE, ema=ema, iters_per_epoch=655)
    log = parse_log(path.read_text(), str(path), reference.stream_size)
    assert (log.format, log.method, log.has_ema, log.iters_per_epoch) == ("unimatch-v2", "unimatch_v2", True, 655)
    assert log.curve("student") == list(enumerate(CURVE)) and log.curve("ema") == list(enumerate(ema))
    assert log.curve() == log.curve("ema") and log.best().epoch == 3
    assert log.best().per_class_ema["disk"] == 72.5
    fixmatch = write_log(tmp_path / "fm.log", "unimatch-v2", config_of("unimatch-v2", method_folder="fixmatch",
                                                                       epochs=4), CURVE, ema=ema)
    assert parse_log(fixmatch.read_text(), str(fixmatch)).method == "fixmatch_v2"


def test_truncated_and_interrupted_logs(tmp_path):
    cut = write_log(tmp_path / "cut.log", "unimatch-v1-2023", config_of("unimatch-v1-2023", epochs=4), CURVE[:2],
                    partial_epoch=True)
    log = parse_log(cut.read_text(), str(cut), reference.stream_size)
    assert log.ending == "truncated" and len(log.evaluations) == 2
    assert "epoch 2 started but never evaluated" in log.notes
    killed = write_log(tmp_path / "killed.log", "unimatch-v1-2023", config_of("unimatch-v1-2023", epochs=4),
                       CURVE[:3], stop_line="Killed")
    log = parse_log(killed.read_text(), str(killed), reference.stream_size)
    assert log.ending == "interrupted" and log.curve()[-1] == (2, 70.25) and "stopped: Killed" in log.notes
    done = write_log(tmp_path / "done.log", "unimatch-v1-2023", config_of("unimatch-v1-2023", epochs=4), CURVE,
                     stop_line="slurmstepd: error: *** STEP 1.0 CANCELLED AT 2024-03-02T10:00:00 ***")
    assert parse_log(done.read_text(), str(done)).ending == "complete"  # cancelled after its last evaluation


@pytest.mark.parametrize("text, fragment", [
    ("just some text\n", "no printed config found"),
    ("[2024-03-01 09:00:00,000][    INFO] {'backbone': 'resnet101',\n 'dataset': \n", "not a readable dict"),
    ("[2024-03-01 09:00:00,000][    INFO] {'backbone': 'resnet101', 'dataset': 'pascal'}\n",
     "lacks crop_size, epochs, batch_size, lr"),
])
def test_unreadable_logs_are_errors_naming_the_file(text, fragment, tmp_path):
    with pytest.raises(LogError, match=fragment) as err:
        parse_log(text, "bad.log")
    assert "bad.log" in str(err.value)


def test_unknown_method_and_no_evaluation_are_errors(tmp_path):
    path = write_log(tmp_path / "a.log", "unimatch-v2", config_of("unimatch-v2", method_folder="fixmatch_dualstream"),
                     CURVE, ema=CURVE)
    with pytest.raises(LogError, match="'fixmatch_dualstream' .* has no counterpart"):
        parse_log(path.read_text(), str(path))
    path = write_log(tmp_path / "b.log", "unimatch-v1-2023", config_of("unimatch-v1-2023"), [], partial_epoch=True)
    with pytest.raises(LogError, match="no evaluation"):
        parse_log(path.read_text(), str(path))


def test_import_records_reference_runs(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logs = tmp_path / "logs"
    write_log(logs / "ResNet-101/183-run1.log", "unimatch-v1-2022", config_of("unimatch-v1-2022", epochs=4), CURVE,
              iters_per_epoch=1300)
    write_log(logs / "v2.log", "unimatch-v2", config_of("unimatch-v2", backbone="dinov2_base",
                                                        method_folder="unimatch_v2", epochs=4, batch=4),
              CURVE, ema=[c + 1 for c in CURVE], iters_per_epoch=655)
    (logs / "notes.log").write_text("not a training log\n")
    assert reference.main(["import", str(logs), "--tracking-uri", uri]) == 1  # one log skipped, with the reason
    out = capsys.readouterr()
    assert "skipped: " in out.err and "notes.log: no printed config found" in out.err
    assert "2 imported, 0 already there, 1 skipped" in out.out
    runs = {run.tags["semiseg.method"]: run for run in reference_runs(uri)}
    v1, v2 = runs["unimatch"], runs["unimatch_v2"]
    assert v1.tags["semiseg.reference"] == "official" and v1.tags["semiseg.reference.gpus_inferred"] == "true"
    assert (v1.tags["semiseg.dataset"], v1.tags["semiseg.split"], v1.tags["semiseg.backbone"]) == \
        ("pascal", "183", "resnet101")
    assert v1.params["train.gpus"] == "4" and v1.params["derived.iters_per_epoch"] == "1300"
    assert v1.params["data.crop_size"] == "321" and v1.metrics["best_miou"] == 70.25
    assert v1.metrics["val/iou/disk"] == 71.25
    assert metric_history(uri, v1.run_id, "val/miou") == list(enumerate(CURVE))
    assert v2.metrics["best_miou"] == 71.25 and v2.tags["semiseg.reported_model"] == "ema"
    assert metric_history(uri, v2.run_id, "val/miou_student") == list(enumerate(CURVE))
    assert len(metric_history(uri, v2.run_id, "reference/epoch_seconds")) == 4
    assert reference.main(["import", str(logs / "v2.log"), "--tracking-uri", uri]) == 0
    assert "0 imported, 1 already there" in capsys.readouterr().out
    assert len(reference_runs(uri)) == 2


def test_help_names_the_formats_and_bad_calls_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit):
        reference.main(["import", "--help"])
    text = capsys.readouterr().out
    for name in ("unimatch-v1-2022", "unimatch-v1-2023", "unimatch-v2", "prevmatch"):
        assert name in text
    from semiseg.cli import run_cli
    assert run_cli(reference.main, ["import", str(tmp_path)]) == 2
    assert run_cli(reference.main, ["import", "--fetch", "nope"]) == 2
    assert "unknown source; known: unimatch" in capsys.readouterr().err


def test_fetch_downloads_through_the_mirror(tmp_path, monkeypatch, capsys):
    served = tmp_path / "mirror"
    repo, commit = "LiheYoung/UniMatch", "0" * 40
    path = "training-logs/Pascal-VOC-2012/High-Quality-Split-Size321/ResNet-50/92.log"
    write_log(served / repo / commit / path, "unimatch-v1-2023", config_of("unimatch-v1-2023", epochs=4,
                                                                          backbone="resnet50"), CURVE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setitem(reference.SOURCES, "unimatch", (repo, commit, (path,)))
        monkeypatch.setenv("SEMISEG_MIRROR", f"http://127.0.0.1:{server.server_port}/")
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        assert reference.main(["import", "--fetch", "unimatch", "--tracking-uri", uri]) == 0
        assert [r.tags["semiseg.backbone"] for r in reference_runs(uri)] == ["resnet50"]
        monkeypatch.setitem(reference.SOURCES, "unimatch", (repo, commit, ("missing.log",)))
        from semiseg.cli import run_cli
        assert run_cli(reference.main, ["import", "--fetch", "unimatch", "--tracking-uri", uri]) == 2
        assert "cannot download" in capsys.readouterr().err
    finally:
        server.shutdown()
    assert REFERENCE_EXPERIMENT == "semiseg-reference"


def test_tables_and_plots_show_the_official_logs_of_the_same_recipe(tmp_path, capsys):
    from semiseg.reports import make_tables
    from semiseg.reference_match import MATCHED_KEYS
    from semiseg.tracking import FRAME_PARAMS, log_runs_batch

    assert set(MATCHED_KEYS) <= set(FRAME_PARAMS)  # the tables can match reference runs on what they read
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    recipe = {"data.crop_size": 321, "train.epochs": 80, "loss.conf_thresh": 0.95, "optim.lr": 0.001}
    tags = {"semiseg.method": "unimatch", "semiseg.dataset": "pascal", "semiseg.split": "92",
            "semiseg.backbone": "resnet101", "semiseg.seed": "0", "semiseg.hash": "h0", "semiseg.n_labeled": "92"}
    log_runs_batch(uri, "paper", [{"name": "ours", "tags": tags, "params": {**recipe, "train.gpus": 4},
                                   "metrics": {"val/miou": [50.0, 60.0, 66.0], "best_miou": 66.0}}])
    logs = tmp_path / "logs"
    for name, curve in (("92-run1.log", [70.0, 74.0]), ("92-run2.log", [71.0, 76.0])):
        write_log(logs / name, "unimatch-v1-2023", config_of("unimatch-v1-2023"), curve, iters_per_epoch=1311)
    write_log(logs / "ablation.log", "unimatch-v1-2023", config_of("unimatch-v1-2023", conf=0.8), [90.0, 99.0])
    assert reference.main(["import", str(logs), "--tracking-uri", uri]) == 0
    out = tmp_path / "out"
    assert make_tables.main(["--exp", "paper", "--tracking-uri", uri, "--out", str(out), "--no-log"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if "| unimatch" in line and "75.2" in line)
    assert row.rstrip(" |").endswith("75.0 (2 logs)")  # the mean of the two logs' bests; the ablation left out
    assert (out / "paper_pascal_resnet101_curves.png").stat().st_size > 0


def test_pascal_all_is_priced_from_official_logs_before_any_run(tmp_path, capsys):
    from semiseg.launch import run_grid

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dry = ["--exp", "pascal_all", "--dry-run", "--no-check", "--tracking-uri", uri, "--output-dir",
           str(tmp_path / "runs")]
    assert run_grid.main(dry) == 0
    assert "no official reference runs for them (none available" in capsys.readouterr().out
    # 80 epochs of 1311 iterations at 0.5 s plus 20 s of evaluation, on 4 GPUs; a 60-epoch log does not match
    write_log(tmp_path / "logs" / "92.log", "unimatch-v1-2023", config_of("unimatch-v1-2023", epochs=80), CURVE,
              iters_per_epoch=1311, s_per_iter=0.5, eval_s=20.0)
    write_log(tmp_path / "logs" / "other.log", "unimatch-v1-2023", config_of("unimatch-v1-2023", split="183",
                                                                             epochs=60), CURVE, iters_per_epoch=1300)
    assert reference.main(["import", str(tmp_path / "logs"), "--tracking-uri", uri]) == 0
    capsys.readouterr()
    assert run_grid.main(dry + ["--speed-factor", "2"]) == 0
    out = capsys.readouterr().out
    expected = 4 * 80 * (1311 * 0.5 + 20) / 3600 / 2
    line = next(x for x in out.splitlines() if " unimatch " in x and " 92 " in x)
    assert f"{expected:6.2f}o" in line
    assert f"estimated cost of 1 of the 30 unfinished cell(s): {expected:.2f} device-hours (1 of them marked o: " \
           f"from official logs" in out


def test_a_restarted_log_keeps_every_evaluation_and_says_so(tmp_path):
    first = write_log(tmp_path / "a.log", "unimatch-v1-2023", config_of("unimatch-v1-2023", epochs=4), CURVE[:2],
                      stop_line="Killed")
    second = write_log(tmp_path / "b.log", "unimatch-v1-2023", config_of("unimatch-v1-2023", epochs=4), CURVE)
    # the relaunch prints its config again and resumes at epoch 2 (the official resume from latest.pth)
    lines = second.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "Epoch: 2," in line)
    config_end = next(i for i, line in enumerate(lines) if line.strip() == "")
    joined = first.read_text() + "\n".join(lines[:config_end + 1] + lines[start:]) + "\n"
    log = parse_log(joined, "92.log", reference.stream_size)
    assert log.curve() == list(enumerate(CURVE)) and log.ending == "complete"
    assert "stopped: Killed" in log.notes and "restarted after epoch 1" in log.notes


def test_the_cell_reporting_its_student_is_compared_with_the_official_student(tmp_path):
    from semiseg.config import RunConfig
    from semiseg.reference_match import References

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_log(tmp_path / "v2.log", "unimatch-v2", config_of("unimatch-v2", backbone="dinov2_base",
                                                            method_folder="unimatch_v2", epochs=4, crop=518, lr=5e-6),
              CURVE, ema=[c + 5 for c in CURVE], iters_per_epoch=655)
    assert reference.main(["import", str(tmp_path / "v2.log"), "--tracking-uri", uri]) == 0
    cfg = RunConfig()
    cfg.method, cfg.data.dataset, cfg.data.split, cfg.model.backbone = "unimatch_v2", "pascal", "92", "dinov2_base"
    cfg.data.crop_size, cfg.train.epochs, cfg.optim.lr, cfg.loss.conf_thresh = 518, 4, 5e-6, 0.95
    refs = References(uri)
    assert refs.curve(cfg) == {i: c + 5 for i, c in enumerate(CURVE)}  # eval.report_model ema (default)
    cfg.eval.report_model = "student"
    assert refs.curve(cfg) == dict(enumerate(CURVE))
    cfg.train.epochs = 60
    assert refs.curve(cfg) == {} and refs.gpu_hours(cfg) is None  # another schedule: not this cell's reference
