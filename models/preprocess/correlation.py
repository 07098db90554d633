"""FlowNet's correlation layer and Resample2d warp in standard torch ops: no compiled extension.

Semantics follow NVIDIA flownet2-pytorch's CUDA kernels exactly (so the official checkpoint means the
same thing here): output channel ``(dy/stride2 + r) * (2r + 1) + (dx/stride2 + r)`` with
``r = max_displacement // stride2`` holds the k×k-patch dot product of ``f1`` at p and ``f2`` at p + d,
divided by ``k * k * C``; both inputs are zero-padded by ``pad_size``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def correlation(f1: torch.Tensor, f2: torch.Tensor, pad_size: int = 20, kernel_size: int = 1,
                max_displacement: int = 20, stride1: int = 1, stride2: int = 2) -> torch.Tensor:
    """B×C×H×W, B×C×H×W → B×(2r+1)²×H'×W' (H' = ceil((H + 2 pad - 2 border) / stride1))."""
    if kernel_size % 2 != 1:
        raise ValueError(f"correlation kernel_size must be odd, got {kernel_size}")
    b, c, h, w = f1.shape
    kernel_rad = (kernel_size - 1) // 2
    border = max_displacement + kernel_rad
    radius = max_displacement // stride2
    out_h = math.ceil((h + 2 * pad_size - 2 * border) / stride1)
    out_w = math.ceil((w + 2 * pad_size - 2 * border) / stride1)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"input {h}x{w} too small for correlation with pad {pad_size}, displacement {max_displacement}")
    p1 = F.pad(f1, (pad_size,) * 4)
    p2 = F.pad(f2, (pad_size,) * 4)
    # patch centres in padded coordinates: y1 = i * stride1 + border (= the kernel's i * stride1 +
    # max_displacement for kernel_size 1, FlowNetC's case; centred patches for larger kernels)
    ys = slice(max_displacement, max_displacement + (out_h - 1) * stride1 + kernel_size)
    xs = slice(max_displacement, max_displacement + (out_w - 1) * stride1 + kernel_size)
    a = p1[:, :, ys, xs]
    outputs = []
    for tj in range(-radius, radius + 1):
        for ti in range(-radius, radius + 1):
            dy, dx = tj * stride2, ti * stride2
            shifted = p2[:, :, ys.start + dy:ys.stop + dy, xs.start + dx:xs.stop + dx]
            prod = (a * shifted).sum(1, keepdim=True)
            if kernel_size > 1 or stride1 > 1:
                prod = F.avg_pool2d(prod, kernel_size, stride=stride1) * (kernel_size * kernel_size)
            outputs.append(prod)
    return torch.cat(outputs, 1) / (kernel_size * kernel_size * c)


class Correlation(nn.Module):
    def __init__(self, pad_size: int = 20, kernel_size: int = 1, max_displacement: int = 20, stride1: int = 1,
                 stride2: int = 2) -> None:
        super().__init__()
        self.args = (pad_size, kernel_size, max_displacement, stride1, stride2)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return correlation(f1, f2, *self.args)


def resample2d(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` read at p + flow (pixels), bilinear, coordinates clamped to the border (Resample2d, k=1)."""
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(image, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border", align_corners=True)


def channel_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm over channels, kept as one channel (ChannelNorm, norm_deg 2)."""
    return x.pow(2).sum(1, keepdim=True).sqrt()
