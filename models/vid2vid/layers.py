"""Small building blocks shared by the generator, encoder and discriminators."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class BatchNorm2d(nn.BatchNorm2d):
    """Batch norm that can keep normalising with the current batch's statistics in eval mode.

    NVIDIA's released vid2vid generators use batch norm and their test script never switches to eval
    mode, so each (single-image) batch is normalised by its own statistics; ``batch_stats_in_eval``
    reproduces that without touching the running averages. Same state-dict keys as ``nn.BatchNorm2d``.
    """

    batch_stats_in_eval: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.batch_stats_in_eval:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return super().forward(x)


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """Normalisation factory. Instance norm has no affine parameters (pix2pixHD/vid2vid default)."""
    if kind == "instance":
        return lambda channels: nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return lambda channels: BatchNorm2d(channels, affine=True)
    if kind == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def conv_layers(in_ch: int, out_ch: int, kernel: int, stride: int, norm: str, reflect: bool = False) -> list[nn.Module]:
    """conv -> norm -> ReLU as a flat list. ``reflect`` pads with reflection (the 7x7 stems), otherwise zeros."""
    pad = kernel // 2
    layers: list[nn.Module] = []
    if reflect:
        layers += [nn.ReflectionPad2d(pad), nn.Conv2d(in_ch, out_ch, kernel, stride=stride)]
    else:
        layers += [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=pad)]
    return layers + [norm_layer(norm)(out_ch), nn.ReLU(inplace=True)]


def conv_block(in_ch: int, out_ch: int, kernel: int, stride: int, norm: str, reflect: bool = False) -> nn.Sequential:
    return nn.Sequential(*conv_layers(in_ch, out_ch, kernel, stride, norm, reflect))


def up_layers(in_ch: int, out_ch: int, norm: str) -> list[nn.Module]:
    """x2 upsampling as a transposed 3x3 conv (pix2pixHD), then norm and ReLU, as a flat list."""
    return [
        nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1),
        norm_layer(norm)(out_ch),
        nn.ReLU(inplace=True),
    ]


def up_block(in_ch: int, out_ch: int, norm: str) -> nn.Sequential:
    return nn.Sequential(*up_layers(in_ch, out_ch, norm))


def pyramid_down(x: torch.Tensor) -> torch.Tensor:
    """One level down the image pyramid: 3x3 stride-2 average, padded cells not counted (pix2pixHD/vid2vid)."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


def pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` tensors, finest (``x`` itself) first, each half the size of the previous one."""
    out = [x]
    for _ in range(levels - 1):
        out.append(pyramid_down(out[-1]))
    return out


def output_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """7x7 reflection-padded output layer (no activation; the caller applies tanh/sigmoid)."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_ch, out_ch, 7))


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convs with a skip connection (Johnson et al.)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            make_norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            make_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def res_layers(channels: int, n_blocks: int, norm: str) -> list[nn.Module]:
    return [ResnetBlock(channels, norm) for _ in range(n_blocks)]




def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales: the pix2pixHD/vid2vid initialisation."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
