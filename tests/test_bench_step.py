"""The step benchmark's side-by-side mode runs on CPU and reports both settings, their ratio and losses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def run_bench(*args: str, cap: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")}
    env.update({"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"} | ({"ONEDNN_MAX_CPU_ISA": cap} if cap else {}))
    proc = subprocess.run([sys.executable, str(ROOT / "tests/benchmarks/bench_step.py"), *args], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"stdout": proc.stdout}


@pytest.mark.parametrize("cap", ["", "AVX2"])
def test_compare_prints_both_settings_the_ratio_and_the_loss_after_k_steps(cap):
    """The speed setting's precision is ``train.amp=auto``: bf16 only on a CPU that runs it natively (never the
    emulated bf16 of an AVX2 CPU, ~10x slower); the header and the JSON name the hardware."""
    steps, warmup = 4, 1
    result = run_bench("--compare", "--method", "unimatch", "--backbone", "tiny", "--crop", "32", "--batch", "2",
                       "--classes", "4", "--steps", str(steps), "--warmup", str(warmup), "--device", "cpu",
                       "--set", "model.output_stride=8", "--set", "model.aspp_dilations=[2,4,6]", cap=cap)
    official, speed = result["settings"]
    native = not cap and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    assert (official["setting"], official["amp"]) == ("official", "off")
    assert (speed["setting"], speed["amp"]) == ("speed", "bf16" if native else "off")
    hardware = result["hardware"]
    assert hardware["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert hardware["onednn_max_cpu_isa"] == cap and hardware["cpu_native_bf16"] == native
    assert f"cpu_capability {hardware['cpu_capability']}" in result["stdout"].splitlines()[0]
    assert result["gflop_per_step"] > 0 and official["tflops_per_s"] > 0 and speed["tflops_per_s"] > 0
    assert result["speedup"] == round(official["step_s_median"] / speed["step_s_median"], 3)
    for row in (official, speed):
        assert len(row["loss_curve"]) == warmup + steps
    # same weights and batch: the first losses differ at most by bf16 rounding
    assert abs(official["loss_first"] - speed["loss_first"]) < 0.05 * official["loss_first"]
    assert "ratio official/speed" in result["stdout"] and "mean of the last" in result["stdout"]


def test_the_official_per_parameter_ema_loop_equals_the_engines_update():
    sys.path.insert(0, str(ROOT / "tests/benchmarks"))
    try:
        from bench_step import official_ema_update
    finally:
        sys.path.remove(str(ROOT / "tests/benchmarks"))
    import copy

    from semiseg.methods.ema import ema_update_

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1))
    model(torch.randn(2, 3, 8, 8))  # BN running statistics differ from their initial values
    ema = copy.deepcopy(model)
    for p in model.parameters():
        p.data.add_(torch.randn_like(p))
    official, engine = copy.deepcopy(ema), copy.deepcopy(ema)
    official_ema_update(official, model, 0.9)
    ema_update_(engine, model, 0.9)
    for a, b in zip(official.state_dict().values(), engine.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_compare_runs_an_ema_method():
    result = run_bench("--compare", "--method", "fixmatch_v2", "--backbone", "dinov2_small", "--crop", "28",
                       "--batch", "1", "--classes", "4", "--steps", "1", "--warmup", "1", "--device", "cpu")
    assert [row["setting"] for row in result["settings"]] == ["official", "speed"]
    assert all(row["step_s_median"] > 0 for row in result["settings"])
