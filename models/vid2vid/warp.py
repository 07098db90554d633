"""Backward warping and flow-convention conversions.

Convention used everywhere in this package: a flow ``f`` of shape (B, 2, H, W) holds ``f[:,0] = dx`` and
``f[:,1] = dy`` in pixels of the grid it lives on, and warping is *backward*:
``warp(img, f)(x, y) = img(x + dx, y + dy)`` with bilinear interpolation, pixel centres at integer
coordinates (``align_corners=True``) and replicated borders. That is exactly ``cv2.remap(img,
x + dx, y + dy, INTER_LINEAR, borderMode=BORDER_REPLICATE)`` (tested).

The generator's flow for frame t lives on frame t's grid and points into frame t-1 (it warps the previous
output to the current frame). Datasets store *forward* flow t -> t+1 on frame t's grid (what an optical
flow network gives for the pair (x_t, x_{t+1})); :func:`forward_to_backward_flow` turns one into the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_GRIDS: dict[tuple, torch.Tensor] = {}


def _base_grid(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixel centres in grid_sample's [-1, 1] coordinates (1, H, W, 2), as ``linspace(-1, 1)`` (the same
    rounding as NVIDIA's code, so released models reproduce bit-closely). Cached per size/device/dtype."""
    key = (height, width, device, dtype)
    grid = _GRIDS.get(key)
    if grid is None:
        ys, xs = torch.meshgrid(
            torch.linspace(-1.0, 1.0, height, device=device, dtype=dtype),
            torch.linspace(-1.0, 1.0, width, device=device, dtype=dtype),
            indexing="ij",
        )
        grid = torch.stack((xs, ys), dim=-1).unsqueeze(0)
        if len(_GRIDS) > 32:
            _GRIDS.clear()
        _GRIDS[key] = grid
    return grid


def warp(image: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp ``image`` (B, C, H, W) by ``flow`` (B, 2, H, W) in pixels; see the module docstring."""
    if image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in size")
    _, _, height, width = flow.shape
    # pixel displacement -> [-1, 1] units with align_corners=True: -1/+1 are the centres of the border pixels
    scale = flow.new_tensor([max(width - 1, 1) / 2.0, max(height - 1, 1) / 2.0]).view(1, 2, 1, 1)
    grid = _base_grid(height, width, flow.device, flow.dtype) + (flow / scale).permute(0, 2, 3, 1)
    return F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode=padding_mode, align_corners=True)


def forward_to_backward_flow(forward: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """Backward flow (t+1 -> t, on frame t+1's grid) from forward flow (t -> t+1, on frame t's grid).

    Solves ``b(p) = -f(p + b(p))`` by fixed-point iteration from ``b = -f``: exact for constant flow and
    accurate wherever the flow is smooth; disoccluded pixels get the flow of their neighbourhood.
    """
    backward = -forward
    for _ in range(iterations):
        backward = -warp(forward, backward)
    return backward


def compose_backward_flows(flows: list[torch.Tensor]) -> torch.Tensor:
    """Chain backward flows ``[b_{j->j-1}, b_{j-1->j-2}, ...]`` into ``b_{j->j-n}`` (newest first)."""
    total = flows[0]
    for older in flows[1:]:
        total = total + warp(older, total)
    return total


def resize_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """Downsample a flow by an integer factor: average-pool and rescale the pixel displacements."""
    if factor == 1:
        return flow
    return F.avg_pool2d(flow, factor) / factor
