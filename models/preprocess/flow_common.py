"""What every flow backend shares: resizing flow fields, warping, and occlusion from a forward-backward check.

Occlusion follows Sundaram et al. (ECCV 2010), the rule most flow-based video work (vid2vid's included)
uses to decide where a forward flow vector can be trusted: a pixel is valid when following the forward
flow and then the backward flow returns close to where it started, and the target lies inside the frame.
"""

from __future__ import annotations

import cv2
import numpy as np

FB_ALPHA, FB_BETA = 0.01, 0.5


def sample(field: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``field`` (C×H×W) read at x + flow (bilinear, replicated border)."""
    _, h, w = flow.shape
    grid_x = np.arange(w, dtype=np.float32)[None, :] + flow[0]
    grid_y = np.arange(h, dtype=np.float32)[:, None] + flow[1]
    return np.stack([cv2.remap(np.ascontiguousarray(c, np.float32), grid_x, grid_y, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE) for c in field])


def forward_backward_occlusion(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """H×W uint8, 1 where the forward flow is inconsistent with the backward flow or leaves the frame."""
    _, h, w = forward.shape
    back_at = sample(backward, forward)
    total = forward + back_at
    lhs = (total ** 2).sum(0)
    rhs = FB_ALPHA * ((forward ** 2).sum(0) + (back_at ** 2).sum(0)) + FB_BETA
    tx = np.arange(w, dtype=np.float32)[None, :] + forward[0]
    ty = np.arange(h, dtype=np.float32)[:, None] + forward[1]
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    return ((lhs > rhs) | outside).astype(np.uint8)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """2×h×w flow resized to (height, width) with its vectors rescaled to the new pixel units."""
    height, width = size
    _, h, w = flow.shape
    if (h, w) == (height, width):
        return flow.astype(np.float32, copy=False)
    dx = cv2.resize(flow[0], (width, height), interpolation=cv2.INTER_LINEAR) * (width / w)
    dy = cv2.resize(flow[1], (width, height), interpolation=cv2.INTER_LINEAR) * (height / h)
    return np.stack([dx, dy]).astype(np.float32)


def resize_frame(frame: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """RGB frame at (height, width) — area filter when shrinking, bilinear when growing."""
    if size is None or frame.shape[:2] == tuple(size):
        return frame
    height, width = size
    shrink = height * width < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
