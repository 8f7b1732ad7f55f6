"""What the machine can do: bf16 on the CPU (AVX-512-BF16 / AMX) or a GPU."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively; elsewhere bf16 autocast is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def resolve_precision(requested: str, accelerator: str) -> str:
    """Map --precision auto|32|bf16 to Lightning's precision for the chosen accelerator."""
    if requested == "32":
        return "32-true"
    if requested == "bf16":
        return "bf16-mixed"
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if gpu:
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_bf16() else "32-true"
