"""How a training step runs its arithmetic: exact float32, or bf16 autocast (float32 master weights and losses).

On CPUs with native bf16 (AVX512-BF16 or AMX) the demo preset's step at 128x64 ran 1.5x faster with bf16
autocast alone and about 2x with channels-last on top (benchmarks/model.py --mode train, interleaved);
without native bf16 the emulation is slower than float32, so such CPUs keep float32. The float32 mode is
the exact one: the equivalence with NVIDIA's code (scripts/compare_official_*.py) is checked in it.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Literal

import torch
from torch import nn

Precision = Literal["fp32", "bf16"]


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products in hardware (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def training_precision(device: torch.device, bf16: bool) -> Precision:
    """bf16 where asked for and fast (a CUDA device, or a CPU with native bf16), else fp32."""
    if bf16 and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())):
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """The context a training step runs in: bf16 autocast (weights stay float32; losses, grid sampling and
    reflection padding are on autocast's float32 list) or nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_modules(device: torch.device, precision: Precision, *modules: nn.Module) -> None:
    """Channels-last weights for bf16 on CPU (oneDNN's blocked bf16 convolutions want NHWC: measured ~1.3x
    on top of autocast); float32 keeps the default layout, whose kernels reproduce NVIDIA's results."""
    if precision == "bf16" and device.type == "cpu":
        for module in modules:
            module.to(memory_format=torch.channels_last)
