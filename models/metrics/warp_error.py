"""Temporal warping error: a weights-free measure of flicker in a synthesized clip.

For each consecutive pair (t, t+1) of synthesized frames, one frame is resampled along the *source*
video's optical flow onto the other's pixel grid and compared there, ignoring occluded pixels and
samples that fall outside the image (Lai et al., ECCV 2018, "Learning Blind Video Temporal Consistency").
A temporally stable synthesis moves with the source motion, so it scores ~0; flicker raises it.

Flow convention (the project's flow stage: float pixels, ``flow[..., 0] = dx``, ``flow[..., 1] = dy``):

- ``direction="forward"`` (default): ``flows[t]`` is the flow t -> t+1 on frame t's grid, i.e. the
  point at p in frame t is at p + flow[t](p) in frame t+1. Moving frame t forward would need splatting
  (holes, collisions), so the pair is compared on frame t's grid instead: frame t+1 is bilinearly
  sampled at p + flow[t](p) and compared with frame t at p. This is frame t "warped to t+1" read
  back at t's pixels: the same point in both frames, no holes.
- ``direction="backward"``: ``flows[t]`` is the flow t+1 -> t on frame t+1's grid; frame t is sampled at
  q + flow[t](q) (frame t warped to t+1) and compared with frame t+1 at q.

Per pair the error is the mean, over valid pixels, of the squared RGB difference summed over channels
with values in [0, 1]; the clip value is the mean over pairs that have any valid pixel.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch

Direction = Literal["forward", "backward"]


@dataclasses.dataclass(frozen=True)
class WarpError:
    per_pair: np.ndarray  # (T-1,) float64; NaN where a pair has no valid pixel
    valid_fraction: np.ndarray  # (T-1,) share of pixels that were compared
    clip: float  # mean of the finite per-pair values (NaN if none)


def _tensor(data: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        return data
    array = np.asarray(data)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _to_float_frames(video: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) uint8 [0, 255] or float [0, 1] -> (T, 3, H, W) float64 in [0, 1]."""
    x = _tensor(video)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected a (T, H, W, 3) clip, got {tuple(x.shape)}")
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    return (x.to(torch.float64) / scale).permute(0, 3, 1, 2)


def warp(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``image`` (N, C, H, W) at p + flow(p) (flow (N, H, W, 2) in pixels, [..., 0] = dx).

    Returns the warped image and a (N, H, W) bool mask of samples that landed inside the image.
    Bilinear with pixel centres at integer coordinates; zero or integer flow reproduces pixels exactly.
    """
    n, channels, height, width = image.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=flow.dtype), torch.arange(width, dtype=flow.dtype),
                            indexing="ij")
    x = xs + flow[..., 0]
    y = ys + flow[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    # Explicit bilinear weights in pixel units (not grid_sample's [-1, 1] coordinates, whose
    # normalisation round-off makes even zero flow inexact); outside samples are clamped to the border.
    x = x.clamp(0, width - 1)
    y = y.clamp(0, height - 1)
    x0 = x.floor().clamp(max=max(width - 2, 0))
    y0 = y.floor().clamp(max=max(height - 2, 0))
    wx = (x - x0).to(image.dtype)[:, None]
    wy = (y - y0).to(image.dtype)[:, None]
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    flat = image.reshape(n, channels, height * width)

    def at(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        index = (yi * width + xi).reshape(n, 1, height * width).expand(n, channels, height * width)
        return flat.gather(2, index).reshape(n, channels, height, width)

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    warped = top * (1 - wy) + bottom * wy
    return warped, inside


def forward_backward_occlusion(forward: np.ndarray | torch.Tensor, backward: np.ndarray | torch.Tensor,
                               alpha1: float = 0.01, alpha2: float = 0.5) -> torch.Tensor:
    """Valid mask (N, H, W) from a forward/backward flow pair (Sundaram et al. consistency check).

    ``forward[t]``: t -> t+1 on t's grid; ``backward[t]``: t+1 -> t on t+1's grid. A pixel of frame t
    is valid if following the forward flow and then the backward flow comes back close to where it
    started: |f + b(p+f)|^2 < alpha1 (|f|^2 + |b(p+f)|^2) + alpha2.
    """
    fwd = _tensor(forward).to(torch.float64)
    bwd = _tensor(backward).to(torch.float64)
    bwd_at, inside = warp(bwd.permute(0, 3, 1, 2), fwd)
    bwd_at = bwd_at.permute(0, 2, 3, 1)
    lhs = ((fwd + bwd_at) ** 2).sum(-1)
    rhs = alpha1 * ((fwd ** 2).sum(-1) + (bwd_at ** 2).sum(-1)) + alpha2
    return (lhs < rhs) & inside


def warping_error(frames: np.ndarray | torch.Tensor, flows: np.ndarray | torch.Tensor,
                  valid: np.ndarray | torch.Tensor | None = None, *, direction: Direction = "forward",
                  chunk: int = 8) -> WarpError:
    """Warping error of a (T, H, W, 3) clip given (T-1, H, W, 2) source flows (see module docstring).

    ``valid`` is an optional (T-1, H, W) mask (True / 1 = not occluded) on the grid the comparison is
    made on (frame t for "forward", frame t+1 for "backward"). Pairs are processed ``chunk`` at a time.
    """
    video = _tensor(frames)
    flow_all = _tensor(flows).to(torch.float64)
    t, height, width = video.shape[0], video.shape[1], video.shape[2]
    if t < 2:
        raise ValueError("need at least two frames")
    if flow_all.shape != (t - 1, height, width, 2):
        raise ValueError(f"flows must be (T-1, H, W, 2) = {(t - 1, height, width, 2)}, got {tuple(flow_all.shape)}")
    mask_all = None
    if valid is not None:
        mask_all = _tensor(valid).to(torch.float64)
        if mask_all.shape != (t - 1, height, width):
            raise ValueError(f"valid mask must be (T-1, H, W), got {tuple(mask_all.shape)}")
    per_pair, fraction = [], []
    for start in range(0, t - 1, chunk):
        stop = min(start + chunk, t - 1)
        pair = _to_float_frames(video[start:stop + 1])
        flow = flow_all[start:stop]
        if direction == "forward":
            reference, moving = pair[:-1], pair[1:]
        elif direction == "backward":
            reference, moving = pair[1:], pair[:-1]
        else:
            raise ValueError(f"direction must be 'forward' or 'backward', got {direction!r}")
        warped, inside = warp(moving, flow)
        weight = inside.to(torch.float64)
        if mask_all is not None:
            weight = weight * mask_all[start:stop]
        sq = ((warped - reference) ** 2).sum(dim=1)
        total = weight.sum(dim=(1, 2))
        err = (sq * weight).sum(dim=(1, 2)) / total.clamp_min(1e-12)
        per_pair.append(torch.where(total > 0, err, torch.full_like(err, float("nan"))))
        fraction.append(total / (height * width))
    values = torch.cat(per_pair).numpy()
    finite = values[np.isfinite(values)]
    return WarpError(per_pair=values, valid_fraction=torch.cat(fraction).numpy(),
                     clip=float(finite.mean()) if finite.size else float("nan"))
