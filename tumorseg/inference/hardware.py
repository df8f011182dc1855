"""What this machine's CPU is and offers: its model name, native bf16 arithmetic, int8 dot products (VNNI)."""

import os
import platform
from functools import cache
from pathlib import Path

# bf16 has only been measured on a CPU with avx512_bf16 (experiments/BENCHMARKS.md); without these
# instructions oneDNN emulates it, unmeasured here, so such CPUs keep fp32.
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
# ONNX Runtime's int8 convolutions use these where present (export quantize=int8).
VNNI_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}


@cache
def cpu_flags() -> frozenset[str]:
    """The instruction set flags of /proc/cpuinfo (Linux x86); empty elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return frozenset()
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@cache
def cpu_name() -> str:
    """The CPU's model name: /proc/cpuinfo's (Linux), else what the platform module says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def onednn_allows_bf16() -> bool:
    """False when ONEDNN_MAX_CPU_ISA caps oneDNN below its bf16 kernels (e.g. AVX2, AVX512_CORE_VNNI).

    That cap is how a CPU without bf16 is imitated on one that has it (bench, the test timings).
    """
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return not cap or cap in ("ALL", "DEFAULT") or any(key in cap for key in ("BF16", "FP16", "AMX", "AVX10"))


def cpu_has_bf16() -> bool:
    """True where the CPU has bf16 instructions (and oneDNN may use them)."""
    return bool(BF16_FLAGS & cpu_flags()) and onednn_allows_bf16()


def cpu_has_vnni() -> bool:
    """True where the CPU has int8 dot-product instructions."""
    return bool(VNNI_FLAGS & cpu_flags())
