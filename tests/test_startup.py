"""Start-up of a run: a DeepLabV3+ run (the demo's) does not import timm, and the training CLI imports MLflow only
when a run opens its store (measured figures: tests/benchmarks/NOTES.md, bench_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
import semiseg.train, semiseg.pretext
from semiseg.experiments.registry import expand, load_experiment
from semiseg.models import build_model
(cell,) = expand(load_experiment("demo"), only={"method": ["unimatch"], "split": ["1_16"], "seed": [0]},
                 sets=["model.pretrained="])  # the named weights are made by the run assembly
build_model(cell.config, 6)
print(json.dumps(sorted(m for m in ("timm", "mlflow") if m in sys.modules)))
"""


def test_a_demo_run_imports_neither_timm_nor_mlflow_before_its_store_opens():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_a_dinov2_encoder_still_builds_through_its_lazy_import():
    from semiseg.models import BACKBONES
    from semiseg.models.dinov2 import PATCH
    from semiseg.models.dinov2_vit import PATCH as VIT_PATCH, DinoV2

    assert PATCH == VIT_PATCH and BACKBONES.facts("dinov2_small")["input_multiple"] == PATCH
    assert isinstance(BACKBONES.get("dinov2_small")(), DinoV2)
