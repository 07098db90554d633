"""Conditional multi-scale PatchGAN discriminators: D_I on (frame, source) and D_V on K frames + flows.

D_V is multi-scale in space (like D_I) and in frame rate: temporal scale s looks at K frames taken every
``step_s = base**s`` frames (base = K by default, as in the official code), i.e. for the window that
ends at frame e the frames ``e - (K-1)*step_s, ..., e - step_s, e`` (see :func:`temporal_indices`),
conditioned on the K-1 backward flows between those frames (composed from the per-frame flows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import init_weights, norm_layer


class NLayerDiscriminator(nn.Module):
    """70x70-style PatchGAN (pix2pixHD); returns every layer's output for feature matching."""

    def __init__(self, in_ch: int, ndf: int, n_layers: int, norm: str) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        kw, pad = 4, 2
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_ch, ndf, kw, 2, pad), nn.LeakyReLU(0.2, True))]
        nf = ndf
        for _ in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            layers.append(nn.Sequential(nn.Conv2d(prev, nf, kw, 2, pad), make_norm(nf), nn.LeakyReLU(0.2, True)))
        prev, nf = nf, min(nf * 2, 512)
        layers.append(nn.Sequential(nn.Conv2d(prev, nf, kw, 1, pad), make_norm(nf), nn.LeakyReLU(0.2, True)))
        layers.append(nn.Conv2d(nf, 1, kw, 1, pad))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


def scale_ndf(ndf: int, num_d: int, widths: str = "same") -> list[int]:
    """First-layer filters of each sub-discriminator, finest first (see ``DiscriminatorConfig.scale_widths``)."""
    if widths == "official":
        return [min(64, ndf * 2**k) for k in range(num_d)]
    return [ndf] * num_d


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs on the input downsampled 1x, 2x, 4x, ... (finest first)."""

    def __init__(self, in_ch: int, ndf: int, n_layers: int, num_d: int, norm: str, widths: str = "same") -> None:
        super().__init__()
        self.nets = nn.ModuleList(NLayerDiscriminator(in_ch, nf, n_layers, norm) for nf in scale_ndf(ndf, num_d, widths))
        init_weights(self)

    def forward(self, x: torch.Tensor, parts: int = 1) -> list[list[torch.Tensor]]:
        """``parts`` > 1: the batch is that many equal parts (real, fake, ...), each run on its own (NVIDIA's
        code: batch norm statistics per part), outputs concatenated back in the same order."""
        results = []
        for i, net in enumerate(self.nets):
            if i > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            if parts == 1:
                results.append(net(x))
            else:
                outs = [net(part) for part in x.chunk(parts)]
                results.append([torch.cat(layer) for layer in zip(*outs)])
        return results


def temporal_step(scale: int, n_frames: int, base: int | None = None) -> int:
    return (n_frames if base is None else base) ** scale


def temporal_indices(end: int, scale: int, n_frames: int, base: int | None = None) -> list[int]:
    """Frame indices D_V's temporal scale ``scale`` sees for the window ending at frame ``end``."""
    step = temporal_step(scale, n_frames, base)
    return [end - (n_frames - 1 - k) * step for k in range(n_frames)]


class ImageDiscriminator(MultiscaleDiscriminator):
    """D_I: input = cat(frame (3), source frame s_t (C))."""

    def __init__(self, config: ModelConfig) -> None:
        d = config.discriminator
        super().__init__(3 + config.input.source_channels, d.ndf, d.n_layers, d.num_d, d.norm, d.scale_widths)


class VideoDiscriminator(nn.Module):
    """D_V: one multi-scale PatchGAN per temporal scale, on cat(K frames, K-1 flows) = 3K + 2(K-1) channels
    (frames oldest first; the flows, backward and times ``discriminator.video_flow_scale``, in the same order)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.discriminator
        self.n_frames = d.n_frames_d
        self.base = d.temporal_step_base
        in_ch = 3 * d.n_frames_d + 2 * (d.n_frames_d - 1)
        self.scales = nn.ModuleList(
            MultiscaleDiscriminator(in_ch, d.ndf, d.n_layers, d.num_d, d.norm, d.scale_widths)
            for _ in range(d.n_scales_temporal)
        )

    def indices(self, end: int, scale: int) -> list[int]:
        return temporal_indices(end, scale, self.n_frames, self.base)

    def forward(self, inputs: list[torch.Tensor | None], parts: int = 1) -> list[list[list[torch.Tensor]] | None]:
        """``inputs[s]``: (N, 3K + 2(K-1), H, W) for temporal scale s, or None to skip that scale."""
        return [None if x is None else net(x, parts) for net, x in zip(self.scales, inputs)]


class Discriminators(nn.Module):
    """D_I and (optionally) D_V in one module, so both can be wrapped by one DDP: one forward per phase."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.image = ImageDiscriminator(config)
        self.video = VideoDiscriminator(config) if config.uses_video_discriminator else None

    def forward(
        self, image_input: torch.Tensor, video_inputs: list[torch.Tensor | None] | None = None,
        image_parts: int = 1, video_parts: int = 1,
    ) -> dict[str, list]:
        """``*_parts``: run that many equal parts of the batch separately (see MultiscaleDiscriminator)."""
        out: dict[str, list] = {"image": self.image(image_input, image_parts)}
        if self.video is not None and video_inputs is not None:
            out["video"] = self.video(video_inputs, video_parts)
        return out
