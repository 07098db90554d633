"""Small building blocks shared by the generator, encoder and discriminators."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """Normalisation factory. Instance norm has no affine parameters (pix2pixHD/vid2vid default)."""
    if kind == "instance":
        return lambda channels: nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return lambda channels: nn.BatchNorm2d(channels, affine=True)
    if kind == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def conv_block(in_ch: int, out_ch: int, kernel: int, stride: int, norm: str, reflect: bool = False) -> nn.Sequential:
    """conv -> norm -> ReLU. ``reflect`` pads with reflection (the 7x7 stems), otherwise zeros."""
    pad = kernel // 2
    layers: list[nn.Module] = []
    if reflect:
        layers += [nn.ReflectionPad2d(pad), nn.Conv2d(in_ch, out_ch, kernel, stride=stride)]
    else:
        layers += [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=pad)]
    layers += [norm_layer(norm)(out_ch), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def up_block(in_ch: int, out_ch: int, norm: str) -> nn.Sequential:
    """x2 upsampling as a transposed 3x3 conv (pix2pixHD), then norm and ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1),
        norm_layer(norm)(out_ch),
        nn.ReLU(inplace=True),
    )


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


def res_stack(channels: int, n_blocks: int, norm: str) -> nn.Sequential:
    return nn.Sequential(*[ResnetBlock(channels, norm) for _ in range(n_blocks)])


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
