import cv2
import numpy as np
import pytest
import torch

from models.vid2vid.warp import compose_backward_flows, forward_to_backward_flow, resize_flow, warp


def _remap(img: np.ndarray, flow: np.ndarray, border: int) -> np.ndarray:
    h, w = flow.shape[1:]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, xs + flow[0], ys + flow[1], cv2.INTER_LINEAR, borderMode=border)


def test_warp_matches_cv2_remap_replicate_pixel_exact() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((24, 40, 3), dtype=np.float32)
    # cv2.remap interpolates at 1/32-pixel resolution: flows on that lattice make both exact
    flow = (np.round(rng.normal(0, 4, (2, 24, 40)) * 32) / 32).astype(np.float32)
    flow[:, :3] += 30.0  # plenty of samples far outside the image: border replication
    expected = _remap(img, flow, cv2.BORDER_REPLICATE)
    got = warp(torch.from_numpy(img).permute(2, 0, 1)[None], torch.from_numpy(flow)[None])[0].permute(1, 2, 0).numpy()
    # the grid is built as NVIDIA's code builds it (linspace + flow / ((W-1)/2)): float32 rounding of ~1e-6 px
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_warp_integer_shift_moves_content_and_zero_flow_is_identity() -> None:
    img = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 1, 5, 7)
    assert torch.allclose(warp(img, torch.zeros(1, 2, 5, 7)), img, atol=1e-4)
    flow = torch.zeros(1, 2, 5, 7)
    flow[:, 0] = 2  # out(x, y) = img(x + 2, y)
    flow[:, 1] = -1  # ... and img(., y - 1)
    out = warp(img, flow)
    assert torch.allclose(out[..., 1:, :5], img[..., :-1, 2:], atol=1e-4)


def test_forward_to_backward_flow_inverts_translation_and_warps_back() -> None:
    fwd = torch.zeros(1, 2, 16, 16)
    fwd[:, 0], fwd[:, 1] = 3.0, -1.5
    bwd = forward_to_backward_flow(fwd)
    assert torch.allclose(bwd, -fwd)
    # a smooth non-constant flow: b(p) = -f(p + b(p)) holds after conversion
    ys, xs = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    fwd = torch.stack((2 * torch.sin(3 * ys), 1.5 * xs))[None]
    bwd = forward_to_backward_flow(fwd, iterations=10)
    residual = bwd + warp(fwd, bwd)
    assert residual[..., 4:-4, 4:-4].abs().max() < 1e-3


def test_compose_backward_flows_chains_translations() -> None:
    a = torch.zeros(1, 2, 8, 8)
    a[:, 0] = 1.0
    b = torch.zeros(1, 2, 8, 8)
    b[:, 1] = 2.0
    total = compose_backward_flows([a, b])
    assert torch.allclose(total[:, 0], torch.ones(1, 8, 8)) and torch.allclose(total[:, 1], torch.full((1, 8, 8), 2.0))


def test_resize_flow_rescales_displacements() -> None:
    flow = torch.full((1, 2, 8, 8), 4.0)
    assert torch.allclose(resize_flow(flow, 2), torch.full((1, 2, 4, 4), 2.0))


def test_warp_rejects_mismatched_sizes() -> None:
    with pytest.raises(ValueError):
        warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))
