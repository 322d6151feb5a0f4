"""What ``train.amp`` means on this machine: ``auto`` is bf16 only where bf16 runs natively, fp32 elsewhere.

bf16 autocast is a speed-up only on hardware with bf16 arithmetic: CUDA devices that support it, and CPUs
whose oneDNN kernels use AVX512_BF16 or AMX. Elsewhere oneDNN emulates it, about 10x slower per training
step than fp32 (measured: tests/benchmarks/NOTES.md). torch's CPU flags
(``torch.cpu._is_avx512_bf16_supported()``) and ``get_cpu_capability()`` describe the chip, not the kernels
oneDNN will run: ``ONEDNN_MAX_CPU_ISA`` (or the older ``DNNL_MAX_CPU_ISA``) caps those below what the chip
has, so the cap is read too. That is how an AVX2 machine is reproduced on a bf16 one.
"""

from __future__ import annotations

import os
import sys

import torch

#: oneDNN's CPU ISA names (its ``ONEDNN_MAX_CPU_ISA`` values) in increasing order; bf16 arithmetic from
#: AVX512_CORE_BF16 on. The AVX2 bf16 convert extension (AVX2_VNNI_2) counts as not native: conservative.
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
               "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL",
               "DEFAULT")
_FIRST_BF16_ISA = ONEDNN_ISAS.index("AVX512_CORE_BF16")
ISA_CAP_VARS = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")

#: the cost named when bf16 is asked for on a CPU that emulates it (bench_step.py --compare, NOTES.md)
EMULATED_COST = "about 10x slower per training step than fp32"

_warned: set[str] = set()


def isa_cap() -> str:
    """The oneDNN ISA cap set in the environment (upper case), or '' when none is."""
    for var in ISA_CAP_VARS:
        value = os.environ.get(var, "").strip().upper()
        if value:
            return value
    return ""


def cpu_bf16_native() -> tuple[bool, str]:
    """Whether oneDNN runs bf16 natively on this CPU, and why (a short phrase for logs)."""
    if not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled:
        return False, "oneDNN (mkldnn) is not in use"
    has = [name for name, probe in (("AVX512_BF16", "_is_avx512_bf16_supported"), ("AMX", "_is_amx_tile_supported"))
           if getattr(torch.cpu, probe, lambda: False)()]
    if not has:
        return False, f"CPU capability {torch.backends.cpu.get_cpu_capability()} has no AVX512_BF16 / AMX"
    cap = isa_cap()
    if cap and (cap not in ONEDNN_ISAS or ONEDNN_ISAS.index(cap) < _FIRST_BF16_ISA):
        return False, f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN below its bf16 kernels"
    return True, f"{'+'.join(has)}" + (f", ONEDNN_MAX_CPU_ISA={cap}" if cap else "")


def bf16_native(device: torch.device) -> tuple[bool, str]:
    """Whether bf16 autocast runs natively on ``device`` (CUDA: the device supports it without emulation)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported(including_emulation=False)
        return ok, f"{torch.cuda.get_device_name(device)} {'supports' if ok else 'lacks'} bf16"
    if device.type == "cpu":
        return cpu_bf16_native()
    return False, f"device type {device.type}"


def resolve_amp(amp: str, device: torch.device) -> str:
    """The precision a run with ``train.amp = amp`` trains in on ``device``: 'bf16', 'fp16' or 'off' (fp32).

    ``auto`` → bf16 where it is native, else off. ``fp16`` needs CUDA (its GradScaler): elsewhere off.
    An explicit ``bf16`` stays bf16 everywhere, with a warning (once per process) where it is emulated.
    """
    if amp == "auto":
        return "bf16" if bf16_native(device)[0] else "off"
    if amp == "fp16" and device.type != "cuda":
        return "off"
    if amp == "bf16":
        native, why = bf16_native(device)
        if not native and "bf16" not in _warned:
            _warned.add("bf16")
            print(f"warning: train.amp=bf16 on a {device.type} without native bf16 ({why}): autocast is emulated, "
                  f"{EMULATED_COST}; train.amp=auto picks fp32 here", file=sys.stderr, flush=True)
    return amp


def hardware(device: torch.device) -> str:
    """What a run's numbers depend on beyond its config (logged as ``derived.hardware``): the GPU, or the CPU
    capability torch dispatches to, the oneDNN ISA cap and the thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cap = isa_cap()
    return (f"cpu {torch.backends.cpu.get_cpu_capability()}" + (f", ONEDNN_MAX_CPU_ISA={cap}" if cap else "")
            + f", {torch.get_num_threads()} thread(s)")


def describe(amp: str, device: torch.device) -> str:
    """One line for the start of a run: the requested and the resolved precision, and why."""
    resolved = resolve_amp(amp, device)
    name = {"off": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}[resolved]
    return f"precision: {name} (train.amp={amp}; {bf16_native(device)[1]})"
