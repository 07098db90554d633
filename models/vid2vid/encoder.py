"""Feature encoder E for multimodal synthesis (Sec. 3): real frame -> d-dim map, averaged per instance."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .layers import conv_block, init_weights, output_conv, up_block


def instance_keys(semantic: torch.Tensor | None, instance: torch.Tensor) -> torch.Tensor:
    """One integer per (class, instance) pair, so an instance id reused by two classes stays two objects."""
    key = instance.long() * 256
    if semantic is not None:
        key = key + semantic.long().clamp(0, 255)
    return key


def instance_average(features: torch.Tensor, semantic: torch.Tensor | None, instance: torch.Tensor) -> torch.Tensor:
    """Replace every pixel's feature by the mean over its object: (B, d, H, W) -> (B, d, H, W)."""
    keys = instance_keys(semantic, instance)
    out = torch.empty_like(features)
    for b in range(features.shape[0]):
        _, inverse = torch.unique(keys[b].reshape(-1), return_inverse=True)
        n = int(inverse.max()) + 1
        flat = features[b].reshape(features.shape[1], -1)
        sums = flat.new_zeros(features.shape[1], n).index_add_(1, inverse, flat)
        counts = torch.bincount(inverse, minlength=n).to(flat.dtype).clamp_min(1)
        out[b] = (sums / counts)[:, inverse].reshape(features.shape[1:])
    return out


class FeatureEncoder(nn.Module):
    """pix2pixHD's encoder: conv7, downsamplings, upsamplings, conv7 -> d channels (tanh), then pooling."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        m = config.multimodal
        norm = config.generator.norm
        layers: list[nn.Module] = [conv_block(3, m.nef, 7, 1, norm, reflect=True)]
        for i in range(m.n_downsampling):
            layers.append(conv_block(m.nef * 2**i, m.nef * 2 ** (i + 1), 3, 2, norm))
        for i in range(m.n_downsampling, 0, -1):
            layers.append(up_block(m.nef * 2**i, m.nef * 2 ** (i - 1), norm))
        layers += [output_conv(m.nef, m.feat_nc), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, image: torch.Tensor, semantic: torch.Tensor | None, instance: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) in [-1, 1]; labels (B, H, W) -> instance-wise averaged features (B, d, H, W)."""
        return instance_average(self.net(image), semantic, instance)
