"""Per-network input preprocessing, written down in one place and matched to each reference implementation.

Every feature network was trained on inputs of a particular clip length, size, value range and
normalisation; feeding anything else silently changes the features and so the FID. This module is the
single table of those facts (``PREPROCESSING``) and the one function that applies them. Each resize
rule reproduces its reference on uint8 frames, rounding included:

- I3D (piergiaj/pytorch-i3d, ``charades_dataset_full.load_rgb_frames`` + ``videotransforms.CenterCrop``):
  a frame is resized only when its short side is below 226, by the factor 226 / short side for both
  axes (OpenCV ``INTER_LINEAR`` with ``fx = fy``; OpenCV rounds the output size), then the centre 224x224
  is cut at offset ``int(np.round((h - 224) / 2))``; values ``x / 255 * 2 - 1``. A 1024x512 frame is
  therefore cropped, not scaled. The clip length is ours: 16 frames, as in FVD.
- 3D-ResNeXt-101 (Hara et al., 3D-ResNets-PyTorch at commit 9bc3300, ``spatial_transforms.Scale`` and
  ``CenterCrop``): the short side becomes 112 and the long side ``int(112 * long / short)`` (truncated),
  with PIL bilinear; a frame whose short side already is 112 is left alone; the crop offset is
  ``int(round((w - 112) / 2))``. Values in [0, 255] minus the ActivityNet mean (114.7748, 107.7354, 99.4750),
  std 1 (their defaults ``norm_value=1``, ``mean_dataset=activitynet``). 16 frames.
- Inception-v3 for frame FID (pytorch-fid): each frame bilinearly stretched to 299x299 without
  antialiasing (``F.interpolate(..., align_corners=False)``), RGB in [-1, 1].

Clip windows (``features.iter_clips``): every ``clip_stride`` frames a window of ``clip_len``; when the last
window stops before the last frame, one more window ends exactly at it (it overlaps the one before), so
every frame of a clip is scored; a clip shorter than one window is loop-padded (frames 0, 1, .., T-1, 0,
1, ..) as Hara et al.'s ``LoopPadding`` does.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

ResizeMode = Literal["i3d_min_side", "hara_short_side", "stretch"]
RESIZE_MODES = ("i3d_min_side", "hara_short_side", "stretch")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How one network wants its input; ``clip_len == 1`` marks a frame-level (2D) network."""

    network: str
    clip_len: int
    clip_stride: int
    size: int  # output side (square)
    resize: ResizeMode
    scale: float  # applied to uint8 values first: 1/255 -> [0, 1], 1.0 -> [0, 255]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    min_side: int = 0  # i3d_min_side: frames whose short side is below this are upscaled to it

    def __post_init__(self) -> None:
        if self.clip_len < 1 or self.clip_stride < 1 or self.size < 1:
            raise ValueError(f"clip_len, clip_stride and size must be >= 1: {self}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {self.resize!r}; known: {RESIZE_MODES}")
        if self.resize == "i3d_min_side" and self.min_side < self.size:
            raise ValueError(f"i3d_min_side needs min_side >= size, got {self.min_side} < {self.size}")

    @property
    def is_video(self) -> bool:
        return self.clip_len > 1

    def fingerprint(self) -> str:
        """Stable text of every field: part of the statistics cache key."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


PREPROCESSING: dict[str, Preprocessing] = {
    "i3d": Preprocessing(
        network="i3d", clip_len=16, clip_stride=16, size=224, resize="i3d_min_side", min_side=226,
        scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    ),
    "resnext101": Preprocessing(
        network="resnext101", clip_len=16, clip_stride=16, size=112, resize="hara_short_side",
        scale=1.0, mean=(114.7748, 107.7354, 99.4750), std=(1.0, 1.0, 1.0),
    ),
    "inception": Preprocessing(
        network="inception", clip_len=1, clip_stride=1, size=299, resize="stretch",
        scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
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


def i3d_geometry(height: int, width: int, prep: Preprocessing) -> tuple[int, int, int, int]:
    """(resized h, resized w, crop top, crop left) as piergiaj/pytorch-i3d computes them."""
    short = min(height, width)
    if short < prep.min_side:
        factor = 1 + (prep.min_side - short) / short  # their ``sc``; OpenCV rounds the output size
        height, width = int(np.rint(height * factor)), int(np.rint(width * factor))
    return height, width, int(np.round((height - prep.size) / 2.0)), int(np.round((width - prep.size) / 2.0))


def hara_geometry(height: int, width: int, prep: Preprocessing) -> tuple[int, int, int, int]:
    """(resized h, resized w, crop top, crop left) as Hara et al.'s Scale + CenterCrop compute them."""
    size = prep.size
    if not ((width <= height and width == size) or (height <= width and height == size)):
        if width < height:
            height, width = int(size * height / width), size
        else:
            height, width = size, int(size * width / height)
    return height, width, int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def _uint8(frames: np.ndarray | torch.Tensor) -> np.ndarray:
    array = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    return array if array.dtype == np.uint8 else np.clip(np.rint(array), 0, 255).astype(np.uint8)


def _resize_crop(frames: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, size, size, 3) uint8 with the network's reference resize and crop."""
    height, width = frames.shape[1:3]
    out = []
    if prep.resize == "i3d_min_side":
        import cv2

        new_h, new_w, top, left = i3d_geometry(height, width, prep)
        for frame in frames:
            if (new_h, new_w) != (height, width):
                factor = 1 + (prep.min_side - min(height, width)) / min(height, width)
                frame = cv2.resize(frame, dsize=(0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
                if frame.shape[:2] != (new_h, new_w):
                    raise AssertionError(f"OpenCV resized to {frame.shape[:2]}, expected {(new_h, new_w)}")
            out.append(frame[top:top + prep.size, left:left + prep.size])
    else:
        from PIL import Image

        new_h, new_w, top, left = hara_geometry(height, width, prep)
        for frame in frames:
            if (new_h, new_w) != (height, width):
                frame = np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.BILINEAR))
            out.append(frame[top:top + prep.size, left:left + prep.size])
    return np.stack(out)


def preprocess_frames(frames: np.ndarray | torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """(N, H, W, 3) RGB uint8 frames -> (N, 3, size, size) float32 network input."""
    if frames.shape[-1] != 3 or len(frames.shape) != 4:
        raise ValueError(f"expected (N, H, W, 3) RGB frames, got {tuple(frames.shape)}")
    if prep.resize == "stretch":
        x = as_frames_tensor(frames)
        if tuple(x.shape[-2:]) != (prep.size, prep.size):
            x = F.interpolate(x, size=(prep.size, prep.size), mode="bilinear", align_corners=False)
    else:
        x = as_frames_tensor(np.ascontiguousarray(_resize_crop(_uint8(frames), prep)))
    mean = torch.tensor(prep.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x * prep.scale - mean) / std).contiguous()
