"""``train.amp: auto``: bf16 only where it runs natively, fp32 elsewhere (issue 23), on both paths of this CPU.

The oneDNN ISA cap is read when oneDNN starts, so each path runs in its own process: natively (whatever this
CPU has) and under ``ONEDNN_MAX_CPU_ISA=AVX2``, which is how a CPU without native bf16 is reproduced on one
that has it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest
import torch

from semiseg.reports.tables import hardware_note
from semiseg.precision import ISA_CAP_VARS, resolve_amp
from semiseg.runtime import run
from semiseg.tracking import runs_frame

PROBE = """
import json, sys, torch
from semiseg.precision import bf16_native, resolve_amp
cpu = torch.device("cpu")
print(json.dumps({"auto": resolve_amp("auto", cpu), "fp16": resolve_amp("fp16", cpu),
                  "bf16": [resolve_amp("bf16", cpu), resolve_amp("bf16", cpu)], "why": bf16_native(cpu)[1]}))
"""


def probe(cap: str | None) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if k not in ISA_CAP_VARS}
    if cap:
        env["ONEDNN_MAX_CPU_ISA"] = cap
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def chip_has_bf16() -> bool:
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def test_auto_is_fp32_under_an_avx2_cap_and_explicit_bf16_warns_once():
    out, err = probe("AVX2")
    assert out["auto"] == "off" and out["fp16"] == "off"  # fp16 autocast needs CUDA
    assert out["bf16"] == ["bf16", "bf16"]  # an explicit bf16 is honoured ...
    assert err.count("warning: train.amp=bf16") == 1 and "10x slower" in err  # ... with one warning naming the cost
    assert ("ONEDNN_MAX_CPU_ISA=AVX2" in out["why"]) == chip_has_bf16()


def test_auto_is_bf16_natively_on_a_cpu_with_bf16_and_fp32_on_one_without():
    out, err = probe(None)
    assert out["auto"] == ("bf16" if chip_has_bf16() else "off"), out["why"]
    assert ("warning" in err) == (not chip_has_bf16())


@pytest.mark.parametrize("cap", ["AVX512_CORE_BF16", "avx512_core_amx", "ALL"])
def test_caps_at_or_above_the_bf16_kernels_keep_bf16(cap):
    if not chip_has_bf16():
        pytest.skip("this CPU has no native bf16")
    assert probe(cap)[0]["auto"] == "bf16"


def test_without_cuda_a_cuda_only_precision_falls_back_to_fp32():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert resolve_amp("fp16", torch.device("cpu")) == "off"
    assert resolve_amp("off", torch.device("cpu")) == "off"


def test_a_run_logs_and_prints_the_resolved_precision(make_config, capsys, monkeypatch):
    """In-process, this CPU natively: derived.amp is what auto resolved to; the start prints it once."""
    cfg = make_config("train.amp=auto", "train.epochs=1", "method=supervised")
    run(cfg)
    want = resolve_amp("auto", torch.device("cpu"))
    out = capsys.readouterr().out
    assert out.count("precision: ") == 1 and ("fp32" if want == "off" else "bf16") in out.split("precision: ")[1]
    mlflow.set_tracking_uri(cfg.runtime.tracking_uri)
    (r,) = mlflow.search_runs(experiment_names=["tests"], output_format="list")
    assert r.data.params["derived.amp"] == want and r.data.params["train.amp"] == "auto"
    capability = torch.backends.cpu.get_cpu_capability()
    assert r.data.params["derived.hardware"].startswith(f"cpu {capability}")
    note = hardware_note(runs_frame(cfg.runtime.tracking_uri, "tests"))  # printed under the demo's table
    assert note.strip() == f"Trained on: {r.data.params['derived.hardware']}, {'fp32' if want == 'off' else want}."


def test_a_cli_run_on_a_cpu_without_native_bf16_logs_fp32(make_config, tmp_path):
    """The acceptance path: ``train.amp: auto`` under the AVX2 cap trains in fp32 and logs derived.amp = off."""
    from semiseg.config import save_config

    cfg = make_config("train.amp=auto", "train.epochs=1", "method=supervised")
    save_config(cfg, tmp_path / "run.yaml")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-m", "semiseg.train", "--config", str(tmp_path / "run.yaml")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "precision: fp32 (train.amp=auto" in done.stdout
    mlflow.set_tracking_uri(cfg.runtime.tracking_uri)
    (r,) = mlflow.search_runs(experiment_names=["tests"], output_format="list")
    assert r.data.params["derived.amp"] == "off"
