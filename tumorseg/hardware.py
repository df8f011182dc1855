"""What this machine's CPU offers: native bf16 arithmetic."""

from functools import cache
from pathlib import Path

# bf16 has only been measured on a CPU with avx512_bf16 (experiments/BENCHMARKS.md); without these
# instructions oneDNN emulates it, unmeasured here, so such CPUs keep fp32.
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@cache
def cpu_has_bf16() -> bool:
    """True where /proc/cpuinfo lists bf16 instructions (Linux x86); False elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            return bool(BF16_FLAGS & set(line.split(":", 1)[1].split()))
    return False
