import numpy as np
import pytest
import torch

from models.metrics.warp_error import forward_backward_occlusion, warp, warping_error


def _smooth_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    channels = [0.5 + 0.4 * np.sin(xs / rng.uniform(3, 6) + rng.uniform(0, 6)) * np.cos(ys / rng.uniform(3, 6))
                for _ in range(3)]
    return np.stack(channels, -1)


def test_static_clip_has_zero_error():
    frame = (np.random.default_rng(0).uniform(0, 255, (24, 32, 3))).astype(np.uint8)
    clip = np.stack([frame] * 5)
    result = warping_error(clip, np.zeros((4, 24, 32, 2), np.float32))
    assert result.per_pair.shape == (4,)
    assert np.all(result.per_pair == 0.0) and result.clip == 0.0
    assert np.all(result.valid_fraction == 1.0)


def test_integer_translation_warped_exactly_has_zero_error_and_wrong_flow_does_not():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)]
    dx, dy = 3, -2
    for _ in range(3):
        frames.append(np.roll(frames[-1], shift=(dy, dx), axis=(0, 1)))  # content moves by (dx, dy)
    clip = np.stack(frames)
    flow = np.zeros((3, 20, 28, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy  # forward flow t -> t+1
    right = warping_error(clip, flow)
    assert right.clip == 0.0
    assert np.all(right.valid_fraction < 1.0)  # samples leaving the image are not compared
    assert warping_error(clip, -flow).clip > 0.05
    assert warping_error(clip, np.zeros_like(flow)).clip > 0.05


def test_subpixel_motion_built_by_warping_has_zero_error_both_directions():
    h, w = 24, 30
    later = _smooth_image(h, w)
    flow = np.zeros((1, h, w, 2))
    flow[..., 0], flow[..., 1] = 1.25, -0.5
    earlier, _ = warp(torch.from_numpy(later).permute(2, 0, 1)[None], torch.from_numpy(flow))
    clip = np.stack([earlier[0].permute(1, 2, 0).numpy(), later])  # float frames in [0, 1]
    assert warping_error(clip, flow).clip < 1e-20
    # "backward": flow on frame t+1's grid pointing to frame t; frame t warped to t+1.
    later2, _ = warp(torch.from_numpy(later).permute(2, 0, 1)[None], torch.from_numpy(flow))
    clip2 = np.stack([later, later2[0].permute(1, 2, 0).numpy()])
    assert warping_error(clip2, flow, direction="backward").clip < 1e-20
    assert warping_error(clip2, flow, direction="forward").clip > 1e-4


def test_error_grows_with_injected_flicker():
    base = (_smooth_image(16, 16) * 200).astype(np.uint8)
    flow = np.zeros((5, 16, 16, 2))
    values = []
    for amplitude in (0, 5, 10, 20):
        offsets = amplitude * (np.arange(6) % 2)  # brightness alternates frame to frame
        clip = np.clip(base[None].astype(int) + offsets[:, None, None, None], 0, 255).astype(np.uint8)
        values.append(warping_error(clip, flow).clip)
    assert values[0] == 0.0
    assert values[1] < values[2] < values[3]
    assert values[3] == pytest.approx(3 * (20 / 255) ** 2, rel=1e-9)  # 3 channels, every pixel off by 20


def test_occlusion_mask_excludes_pixels_and_empty_pairs_are_nan():
    clip = np.zeros((3, 8, 8, 3), np.uint8)
    clip[1, :4] = 255  # a corrupted region in frame 1 only
    flow = np.zeros((2, 8, 8, 2))
    mask = np.ones((2, 8, 8), bool)
    assert warping_error(clip, flow).clip > 0
    mask[:, :4] = False
    assert warping_error(clip, flow, mask).clip == 0.0
    mask[1] = False
    result = warping_error(clip, flow, mask)
    assert np.isnan(result.per_pair[1]) and result.clip == 0.0


def test_forward_backward_check_flags_inconsistent_pixels():
    fwd = np.zeros((1, 10, 10, 2))
    fwd[..., 0] = 2.0
    bwd = -fwd.copy()
    valid = forward_backward_occlusion(fwd, bwd)
    assert valid[0, :, :8].all() and not valid[0, :, 8:].any()  # last columns leave the image
    bwd[0, 3:6, 3:6] = 3.0  # backward flow disagrees there
    assert not forward_backward_occlusion(fwd, bwd)[0, 4, 2]


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        warping_error(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 8, 8, 2)))
    with pytest.raises(ValueError):
        warping_error(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 2)), np.ones((2, 4, 4)))


def test_bilinear_warp_matches_grid_sample_reference():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 9, 13, generator=gen, dtype=torch.float64)
    flow = (torch.rand(2, 9, 13, 2, generator=gen, dtype=torch.float64) - 0.5) * 6
    warped, inside = warp(image, flow)
    ys, xs = torch.meshgrid(torch.arange(9.0, dtype=torch.float64), torch.arange(13.0, dtype=torch.float64),
                            indexing="ij")
    grid = torch.stack([2 * (xs + flow[..., 0]) / 12 - 1, 2 * (ys + flow[..., 1]) / 8 - 1], -1)
    ref = torch.nn.functional.grid_sample(image, grid, mode="bilinear", align_corners=True)
    mask = inside[:, None].expand_as(ref)
    assert mask.float().mean() > 0.5
    torch.testing.assert_close(warped[mask], ref[mask], rtol=1e-12, atol=1e-12)


def test_convention_agrees_with_the_synthetic_streets_exact_forward_flow():
    """storage.synthetic renders frames with exact forward flow t->t+1 (2xHxW) and occlusion (1 = invalid)."""
    from storage.synthetic import StreetScene

    frames = list(StreetScene(96, 64, 6, 3).frames())
    rgb = np.stack([f["rgb"] for f in frames])
    flow = np.stack([f["flow"] for f in frames[:-1]]).transpose(0, 2, 3, 1)
    valid = np.stack([f["occlusion"] == 0 for f in frames[:-1]])
    assert np.abs(flow).max() > 2  # the scene really moves
    exact = warping_error(rgb, flow, valid).clip
    still = warping_error(rgb, np.zeros_like(flow), valid).clip
    reversed_ = warping_error(rgb, -flow, valid).clip
    assert exact < still / 4 and still < reversed_
    flicker = rgb.astype(int)
    flicker[1::2] += 12
    flickering = warping_error(np.clip(flicker, 0, 255).astype(np.uint8), flow, valid).clip
    assert flickering > exact + 0.8 * 3 * (12 / 255) ** 2
