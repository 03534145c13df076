"""What the CPU is and can do, read once from ``/proc/cpuinfo`` (Linux; elsewhere from ``platform``)."""
from __future__ import annotations

import functools
import platform


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    name, flags = "", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not name:
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = frozenset(value.split())
                if name and flags:
                    break
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def cpu_name() -> str:
    """The CPU model name, e.g. ``AMD EPYC``."""
    return _cpuinfo()[0]


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX), so bf16 autocast is a speed-up."""
    flags = _cpuinfo()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags
