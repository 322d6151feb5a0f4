"""The wheel holds the data files the tools read and the console scripts; a non-editable install needs both."""

from __future__ import annotations

import importlib
import sys
import zipfile
from pathlib import Path

import pytest
from packaged import build_wheel

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {"semiseg-train": "semiseg.train:cli", "semiseg-grid": "semiseg.launch.run_grid:cli",
           "semiseg-status": "semiseg.launch.status:cli", "semiseg-tune": "semiseg.launch.tune:cli",
           "semiseg-tables": "semiseg.reports.make_tables:cli"}


def test_wheel_holds_the_data_files_and_console_scripts(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = ["semiseg/" + p.relative_to(ROOT).as_posix() for pattern in ("experiments/*.yaml",
              "launch/clusters/*.yaml", "reports/published.yaml") for p in ROOT.glob(pattern)]
    assert len(wanted) >= 4 and not [w for w in wanted if w not in names]
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"semiseg"}, f"the wheel installs more than the semiseg package: {sorted(top_level)}"
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script, target in {"semiseg": "semiseg.commands:cli_main", **SCRIPTS}.items():
        assert f"{script} = {target}" in text


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_console_scripts_exit_2_on_bad_input(script, monkeypatch, capsys):
    module, func = SCRIPTS[script].split(":")
    bad = ["--config", "/nonexistent.yaml"] if script == "semiseg-train" else ["--exp", "nope"]
    monkeypatch.setattr(sys, "argv", [script, *bad])
    assert getattr(importlib.import_module(module), func)() == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and ("nonexistent.yaml" in err or "'nope'" in err)
