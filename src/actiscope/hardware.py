"""What this machine computes natively, and which precision to train and predict in.

`--precision auto` on the CPU picks bf16 autocast only where it is both faster and numerically sound
for *that* architecture on *this* CPU:

1. the CPU flags: without `avx512_bf16` or `amx_bf16`, bf16 is emulated (8-16x slower than fp32);
2. what is known to break: 3D convolutions under CPU bf16 autocast (torchvision's r3d_18 reached a
   non-finite Conv3d weight gradient at step 2 on an AVX-512-BF16 EPYC while fp32 trained);
3. a short measured probe, a few steps each way on a copy of the model (speed, finite loss and
   gradients, losses that agree), cached per machine, torch version, architecture and input shape.

A GPU keeps Lightning's usual mixed precision. Explicit `32` or `bf16` is obeyed as given.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from actiscope.files import atomic_write_text, cache_root

log = logging.getLogger(__name__)

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# A probe must measure bf16 at least this much faster, or fp32 stays (noise on a busy machine is ~10%).
MIN_SPEEDUP = 1.15
# Losses of the first probe step, fp32 vs bf16 from the same weights and batch: relative difference.
MAX_LOSS_DIFFERENCE = 0.05
PROBE_VERSION = 1  # bump when the probe changes, so cached decisions are measured again


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.flags for flag in BF16_FLAGS)

    @property
    def bf16_flags(self) -> list[str]:
        return [flag for flag in BF16_FLAGS if flag in self.flags]


@functools.cache
def cpu_info(path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """The CPU's model name and feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = path.read_text()
    except OSError:
        return CpuInfo("unknown", frozenset())
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return CpuInfo(fields.get("model name", "unknown"), frozenset(fields.get("flags", "").split()))


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively; elsewhere bf16 autocast is emulated and slow."""
    return cpu_info().native_bf16


@dataclass(frozen=True)
class PrecisionChoice:
    """Lightning's precision name, why it was chosen, and whether `auto` chose it (an automatic bf16
    choice falls back to fp32 on a non-finite loss; an explicit one stops with an error)."""

    precision: str  # "32-true" | "bf16-mixed" | "16-mixed"
    reason: str
    automatic: bool = True

    @property
    def bf16(self) -> bool:
        return self.precision.startswith("bf16")

    def line(self, what: str = "precision") -> str:
        label = {"32-true": "fp32", "bf16-mixed": "bf16 autocast", "16-mixed": "fp16 autocast"}
        return f"{what}: {label.get(self.precision, self.precision)} ({self.reason})"


@dataclass(frozen=True)
class ProbeResult:
    """A few steps each way on a copy of the model: seconds per step, and whether bf16 stayed sound."""

    fp32_s: float
    bf16_s: float
    finite: bool
    loss_difference: float  # relative, first step (training) or largest probability difference (inference)

    @property
    def speedup(self) -> float:
        return self.fp32_s / max(self.bf16_s, 1e-9)

    def sound(self) -> bool:
        return self.finite and self.loss_difference <= MAX_LOSS_DIFFERENCE


def has_3d_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv3d) for m in model.modules())


def choose_precision(
    requested: str,
    accelerator: str,
    *,
    model: nn.Module | None = None,
    example: torch.Tensor | None = None,
    training: bool = True,
    cache: Path | None = None,
) -> PrecisionChoice:
    """Map --precision auto|32|bf16 to Lightning's precision, with the reason in words.

    `model` and `example` (one input batch) let `auto` probe this architecture on this CPU; without
    them `auto` goes by the flags alone. `cache` is the JSON file that keeps probe results.
    """
    if requested == "32":
        return PrecisionChoice("32-true", "--precision 32", automatic=False)
    if requested == "bf16":
        return PrecisionChoice("bf16-mixed", "--precision bf16", automatic=False)
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if gpu:
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16-mixed", "the GPU computes bf16")
        return PrecisionChoice("16-mixed", "the GPU has no bf16; fp16 with loss scaling")
    cpu = cpu_info()
    if not cpu.native_bf16:
        return PrecisionChoice(
            "32-true", "this CPU has no native bf16 (avx512_bf16/amx_bf16): bf16 would be emulated and slow"
        )
    if model is not None and has_3d_convolutions(model):
        return PrecisionChoice("32-true", "3D convolutions go non-finite under bf16 on the CPU")
    if model is None or example is None:
        return PrecisionChoice("bf16-mixed", f"the CPU computes bf16 natively ({', '.join(cpu.bf16_flags)})")
    task = "training" if training else "inference"
    key = _probe_key(cpu, task, model, example)
    result = _cached(cache, key)
    measured = "cached probe" if result else "probe"
    if result is None:
        started = time.perf_counter()
        result = (probe_training if training else probe_inference)(model, example)
        log.debug("%s precision probe took %.1f s", task, time.perf_counter() - started)
        _store(cache, key, result)
    figures = f"{measured}: bf16 {result.speedup:.2f}x fp32 for {task}"
    if not result.finite:
        return PrecisionChoice("32-true", f"{figures}, but bf16 gave non-finite values")
    if not result.sound():
        return PrecisionChoice(
            "32-true", f"{figures}, but bf16 disagreed with fp32 by {result.loss_difference:.3f}"
        )
    if result.speedup < MIN_SPEEDUP:
        return PrecisionChoice("32-true", f"{figures}: not enough faster")
    return PrecisionChoice("bf16-mixed", f"{figures}, finite and agreeing")


# -- the probe ------------------------------------------------------------------------------------------
def _forward(model: nn.Module, x: torch.Tensor, bf16: bool) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return model(x).float()


def probe_training(model: nn.Module, example: torch.Tensor, steps: int = 3) -> ProbeResult:
    """`steps` optimiser steps each way (the first one untimed) on copies of `model`, from the same
    weights and on the same random-label batch; AdamW as training uses."""
    seconds: dict[bool, float] = {}
    first_loss: dict[bool, float] = {}
    finite = True
    for bf16 in (False, True):
        generator = torch.Generator().manual_seed(0)  # the same labels both ways
        net = copy.deepcopy(model).train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
        began = 0.0
        for step in range(steps + 1):
            if step == 1:
                began = time.perf_counter()
            logits = _forward(net, example, bf16)
            if step == 0:
                target = torch.randint(0, logits.shape[1], (len(example),), generator=generator)
            loss = nn.functional.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if bf16:
                grads = [p.grad for p in net.parameters() if p.grad is not None]
                finite = (
                    finite
                    and bool(torch.isfinite(loss))
                    and all(bool(torch.isfinite(g).all()) for g in grads)
                )
            first_loss.setdefault(bf16, loss.item())
            optimizer.step()
        seconds[bf16] = (time.perf_counter() - began) / steps
    difference = abs(first_loss[True] - first_loss[False]) / max(1.0, abs(first_loss[False]))
    return ProbeResult(seconds[False], seconds[True], finite, difference)


@torch.inference_mode()
def probe_inference(model: nn.Module, example: torch.Tensor, steps: int = 3) -> ProbeResult:
    """`steps` forward passes each way (the first one untimed): speed, finite outputs, and the largest
    difference in class probabilities."""
    net = model.eval()
    seconds: dict[bool, float] = {}
    probs: dict[bool, torch.Tensor] = {}
    for bf16 in (False, True):
        probs[bf16] = _forward(net, example, bf16).softmax(1)
        began = time.perf_counter()
        for _ in range(steps):
            _forward(net, example, bf16)
        seconds[bf16] = (time.perf_counter() - began) / steps
    finite = bool(torch.isfinite(probs[True]).all())
    difference = float((probs[True] - probs[False]).abs().max()) if finite else float("inf")
    return ProbeResult(seconds[False], seconds[True], finite, difference)


# -- the cache ------------------------------------------------------------------------------------------
def default_probe_cache() -> Path:
    """Where probe results are kept: beside the decoded-image cache ($ACTISCOPE_CACHE)."""
    return cache_root() / "precision.json"


def _probe_key(cpu: CpuInfo, task: str, model: nn.Module, example: torch.Tensor) -> str:
    architecture = getattr(model, "architecture", type(model).__name__)
    shape = "x".join(map(str, example.shape))
    return f"v{PROBE_VERSION}|{cpu.model}|{','.join(cpu.bf16_flags)}|torch {torch.__version__}|{task}|{architecture}|{shape}"


def _read(cache: Path) -> dict[str, dict[str, float]]:
    try:
        raw = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _cached(cache: Path | None, key: str) -> ProbeResult | None:
    entry = _read(cache).get(key) if cache else None
    try:
        return ProbeResult(**entry) if isinstance(entry, dict) else None  # type: ignore[arg-type]  # a JSON mapping: TypeError below if it does not fit
    except TypeError:  # written by another version of the probe
        return None


def _store(cache: Path | None, key: str, result: ProbeResult) -> None:
    if cache is None:
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps({**_read(cache), key: asdict(result)}, indent=1))
    except OSError as exc:  # a read-only cache only costs a probe next time
        log.debug("cannot keep the precision probe in %s: %s", cache, exc)
