"""What the CPU is and can do, read once from ``/proc/cpuinfo`` (Linux; elsewhere from ``platform``)."""
from __future__ import annotations

import functools
import platform
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


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


def check_device(device: str, where: str = "--device") -> None:
    """UserError (exit 2, one line) when ``device`` names an accelerator this machine does not have."""
    import torch

    from pipeline.errors import UserError

    kind = str(device).split(":")[0]
    if kind not in ("auto", "cpu", "cuda", "mps"):
        raise UserError(f"{where} {device!r}: choose auto, cpu, cuda or mps")
    if kind == "cuda":
        if not torch.cuda.is_available():
            built = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UserError(f"{where} {device}: CUDA is not available ({built}); use cpu or auto")
        index = int(str(device).split(":")[1]) if ":" in str(device) else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"{where} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"{where} mps: Apple MPS is not available on this machine; use cpu or auto")


def resolve_device(device: str = "auto", where: str = "device") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an unavailable cuda/mps is a one-line UserError."""
    import torch

    check_device(device, where)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)
