import pytest
import torch

from models.vid2vid.batch import background_mask, encode_source, instance_boundaries, one_hot_labels, remap_labels
from models.vid2vid.config import load_model_config
from models.vid2vid.generator import Vid2VidGenerator, compose
from models.vid2vid.warp import warp

from .helpers_vid2vid import tiny_config


def _inputs(config, B=1, H=32, W=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = config.generator.n_prev
    src = torch.rand(B, L + 1, config.input.source_channels, H, W, generator=g)
    prev = torch.rand(B, L, 3, H, W, generator=g) * 2 - 1 if L else None
    bg = (torch.rand(B, 1, H, W, generator=g) > 0.3).float()
    return src, prev, bg


@pytest.mark.parametrize("n_scales", [1, 2, 3])
def test_output_shapes_at_every_scale(n_scales: int) -> None:
    config = tiny_config(generator={"n_scales": 3, "ngf": 16, "n_blocks": 1}, input={"width": 64, "height": 32})
    gen = Vid2VidGenerator(config).eval()
    H, W = 32 // 2 ** (3 - n_scales), 64 // 2 ** (3 - n_scales)
    src, prev, bg = _inputs(config, B=2, H=H, W=W)
    with torch.no_grad():
        out = gen(src, prev, bg, n_scales=n_scales)
    expected = {"image": 3, "hallucinated": 3, "bg": 3, "fg": 3, "flow": 2, "mask": 1, "warped": 3, "background_mask": 1}
    assert set(out) == set(expected)
    for key, ch in expected.items():
        assert out[key].shape == (2, ch, H, W), key
    assert out["mask"].min() >= 0 and out["mask"].max() <= 1
    assert out["image"].abs().max() <= 1


def test_gradients_reach_every_subnetwork() -> None:
    config = tiny_config()
    gen = Vid2VidGenerator(config)
    src, prev, bg = _inputs(config, B=2)
    prev.requires_grad_(True)
    out = gen(src, prev, bg)
    loss = out["image"].abs().mean() + out["flow"].abs().mean()
    loss.backward()
    finest = len(gen.scales) - 1
    for name, param in gen.named_parameters():
        scale = int(name.split(".")[1])
        is_head = name.split(".")[2] in {"bg_out", "flow_out", "mask_out", "fg_out"}
        if is_head and scale != finest:
            assert param.grad is None, f"{name}: coarse output layers are unused when finer scales run"
            continue
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert prev.grad is not None and prev.grad.abs().sum() > 0  # recursion: gradients reach earlier outputs


def test_eq9_composition_on_hand_made_tensors() -> None:
    prev = torch.zeros(1, 3, 2, 4)
    prev[..., 0, :] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    prev[..., 1, :] = torch.tensor([0.5, 0.6, 0.7, 0.8])
    flow = torch.zeros(1, 2, 2, 4)
    flow[:, 0] = 1.0  # warped(x, y) = prev(x + 1, y), border replicated
    m_b = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]]).view(1, 1, 2, 4)
    mask = torch.tensor([[0.0, 0.5, 1.0, 0.25], [1.0, 0.0, 0.5, 0.75]]).view(1, 1, 2, 4)
    parts = {"bg": torch.full((1, 3, 2, 4), -0.5), "fg": torch.full((1, 3, 2, 4), 0.9), "flow": flow, "mask": mask}
    out = compose(parts, prev, m_b)
    warped = torch.tensor([[0.2, 0.3, 0.4, 0.4], [0.6, 0.7, 0.8, 0.8]])
    h = torch.where(m_b[0, 0] > 0, torch.tensor(-0.5), torch.tensor(0.9))
    expected = (1 - mask[0, 0]) * warped + mask[0, 0] * h
    assert torch.allclose(out["warped"][0, 0], warped, atol=1e-6)
    assert torch.allclose(out["hallucinated"][0, 0], h)
    assert torch.allclose(out["image"][0, 0], expected, atol=1e-6)
    # Eq. 4 (no fg/bg prior): hallucination is H itself
    eq4 = compose({k: v for k, v in parts.items() if k != "fg"}, prev, None)
    assert torch.allclose(eq4["image"][0, 0], (1 - mask[0, 0]) * warped + mask[0, 0] * -0.5, atol=1e-6)
    # no flow warping: the image is the hallucination
    assert torch.equal(compose({"bg": parts["bg"]}, prev, None)["image"], parts["bg"])


def test_generator_matches_manual_composition_of_its_parts() -> None:
    config = tiny_config()
    gen = Vid2VidGenerator(config).eval()
    src, prev, bg = _inputs(config)
    with torch.no_grad():
        out = gen(src, prev, bg)
    h = (1 - bg) * out["fg"] + bg * out["bg"]
    manual = (1 - out["mask"]) * warp(prev[:, -1], out["flow"]) + out["mask"] * h
    assert torch.allclose(out["image"], manual, atol=1e-6)


@pytest.mark.parametrize(
    "overrides, absent",
    [
        ({"generator": {"use_fg_prior": False}}, {"fg", "background_mask"}),
        ({"generator": {"use_flow_warping": False}}, {"flow", "mask", "warped"}),
        (
            {
                "frame_by_frame": True,
                "generator": {"n_prev": 0, "use_flow_warping": False},
                "discriminator": {"use_video_discriminator": False},
            },
            {"flow", "mask", "warped"},
        ),
    ],
)
def test_ablations_drop_their_parts(overrides, absent) -> None:
    config = tiny_config(**overrides)
    gen = Vid2VidGenerator(config).eval()
    src, prev, bg = _inputs(config)
    with torch.no_grad():
        out = gen(src, prev, bg)
    assert absent.isdisjoint(out) and out["image"].shape == (1, 3, 32, 64)
    full = sum(p.numel() for p in Vid2VidGenerator(tiny_config()).parameters())
    assert sum(p.numel() for p in gen.parameters()) < full


def test_source_encoding_one_hot_ignore_boundaries_and_background() -> None:
    config = tiny_config()
    sem = torch.tensor([[[0, 13, 255], [8, 8, 18]]])
    inst = torch.tensor([[[0, 1, 1], [0, 0, 2]]])
    oh = one_hot_labels(sem, 19)
    assert oh.shape == (1, 19, 2, 3) and oh[0, :, 0, 2].sum() == 0 and oh[0, 13, 0, 1] == 1
    assert oh.dtype == torch.float32 and oh.sum(1).tolist() == [[[1, 1, 0], [1, 1, 1]]]
    assert one_hot_labels(torch.tensor([[[-1, 19, 3]]]), 19).sum(1).tolist() == [[[0, 0, 1]]]  # out of range: zero
    edges = instance_boundaries(inst)
    assert edges[0, 0].tolist() == [[1, 1, 1], [0, 1, 1]]
    assert instance_boundaries(torch.zeros(1, 3, 3, dtype=torch.long)).sum() == 0
    bg = background_mask(sem, config.generator.foreground_classes)
    assert bg[0, 0].tolist() == [[1, 0, 1], [1, 1, 0]]
    src = encode_source(config, {"semantic": sem[None], "instance": inst[None]})
    assert src.shape == (1, 1, 20, 2, 3)
    assert remap_labels(sem, {8: 2})[0, 1].tolist() == [2, 2, 18]


def test_presets_validate_and_bad_configs_are_rejected(tmp_path) -> None:
    street = load_model_config("street")
    assert (street.input.width, street.input.height, street.generator.n_scales) == (2048, 1024, 3)
    assert street.loss.lambda_flow == 10 and street.generator.n_prev == 2
    for name in ("face", "pose", "tiny"):
        assert load_model_config(name).name == name
    with pytest.raises(ValueError):
        tiny_config(input={"width": 60})  # not divisible by 2**(scales-1+downsamplings)
    with pytest.raises(ValueError):
        tiny_config(frame_by_frame=True)  # frame-by-frame with L=2 and D_V is contradictory
    with pytest.raises(FileNotFoundError):
        load_model_config("no-such-preset")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ninput: {width: 64, height: 32}\ngenerator: {n_scales: 1, n_downsampling: 2}\n")
    assert load_model_config(path).generator.n_scales == 1


def test_street_layout_has_the_official_parameter_count() -> None:
    """NVIDIA's label2city_2048 generator (3 scales, ngf 128, 35 label ids + instance edges, fg): 415,075,371."""
    config = load_model_config("label2city_2048")  # the released model's preset, declared inputs included
    assert config.input.source_channels == 35 + 1
    with torch.device("meta"):
        gen = Vid2VidGenerator(config)
    assert sum(p.numel() for p in gen.parameters()) == 415_075_371
    coarse = gen.scales[0]
    # each encoder ends in its own n_blocks - n_blocks//2 residual blocks; each branch runs n_blocks//2
    assert sum(type(m).__name__ == "ResnetBlock" for m in coarse.src_down) == 5
    assert sum(type(m).__name__ == "ResnetBlock" for m in coarse.img_down) == 5
    assert len(coarse.bg_res) == len(coarse.flow_res) == 4 and len(coarse.fg_res) == 9


def test_pyramid_is_a_3x3_average_without_padded_cells() -> None:
    from models.vid2vid.layers import pyramid

    x = torch.arange(16.0).view(1, 1, 4, 4)
    levels = pyramid(x, 3)
    assert [tuple(t.shape[-2:]) for t in levels] == [(4, 4), (2, 2), (1, 1)]
    # top-left output cell averages the 2x2 valid cells of its 3x3 window (count_include_pad=False)
    assert levels[1][0, 0, 0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert levels[1][0, 0, 1, 1] == pytest.approx(x[0, 0, 1:4, 1:4].mean().item())


def test_official_composition_never_warps_foreground() -> None:
    prev = torch.rand(1, 3, 2, 4) * 2 - 1
    flow = torch.zeros(1, 2, 2, 4)
    flow[:, 0] = 1.0
    m_b = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 1.0]]).view(1, 1, 2, 4)
    mask = torch.tensor([[0.0, 0.5, 1.0, 0.25], [1.0, 0.0, 0.5, 0.75]]).view(1, 1, 2, 4)
    parts = {"bg": torch.full((1, 3, 2, 4), -0.5), "fg": torch.full((1, 3, 2, 4), 0.9), "flow": flow, "mask": mask}
    out = compose(parts, prev, m_b, "official")
    warped = warp(prev, flow)
    expected = (1 - m_b) * 0.9 + m_b * ((1 - mask) * warped + mask * -0.5)
    assert torch.allclose(out["image"], expected, atol=1e-6)
    fg_pixels = out["image"][(m_b == 0).expand(-1, 3, -1, -1)]
    assert torch.allclose(fg_pixels, torch.full_like(fg_pixels, 0.9))
    paper = compose(parts, prev, m_b, "paper")
    assert not torch.allclose(paper["image"], out["image"])  # Eq. 9 warps foreground pixels too
    raw = compose(parts, prev, m_b, "official", raw_only=True)
    assert torch.equal(raw["image"], raw["hallucinated"]) and "warped" not in raw
    with pytest.raises(ValueError, match="composition"):
        compose(parts, prev, m_b, "other")


def test_per_scale_previous_frames_drive_each_scale() -> None:
    """Each active scale composes its own frame from its own previous outputs (the official recurrence);
    a single finest-size tensor is pooled down the same pyramid."""
    from models.vid2vid.layers import pyramid

    config = tiny_config(generator={"composition": "official"})
    gen = Vid2VidGenerator(config).eval()
    src, prev, bg = _inputs(config)
    with torch.no_grad():
        pooled = gen(src, prev, bg, return_pyramid=True)
        per_scale = [p.view(1, 2, 3, *p.shape[-2:]) for p in pyramid(prev.flatten(1, 2), 2)[::-1]]
        explicit = gen(src, per_scale, bg, return_pyramid=True)
        other = gen(src, [per_scale[0] * 0, per_scale[1]], bg, return_pyramid=True)
    assert [tuple(f.shape[-2:]) for f in pooled["pyramid"]] == [(16, 32), (32, 64)]
    assert torch.allclose(pooled["image"], explicit["image"], atol=1e-6)
    assert torch.equal(pooled["pyramid"][-1], pooled["image"])
    assert not torch.allclose(other["pyramid"][0], explicit["pyramid"][0])  # coarse state changes the coarse frame
    assert not torch.allclose(other["image"], explicit["image"])  # ...and, through its features, the finest one
    with pytest.raises(ValueError, match="per-scale"):
        gen(src, per_scale[:1], bg)


def test_batch_norm_can_use_each_batch_statistics_at_test_time() -> None:
    """The released models normalise with per-image statistics at test time (never in eval mode)."""
    running = tiny_config(generator={"norm": "batch", "test_norm_stats": "running"})
    official = tiny_config(generator={"norm": "batch", "test_norm_stats": "batch"})
    torch.manual_seed(0)
    gen_running = Vid2VidGenerator(running)
    gen_batch = Vid2VidGenerator(official)
    gen_batch.load_state_dict(gen_running.state_dict())
    src, prev, bg = _inputs(running)
    with torch.no_grad():
        train_mode = gen_batch.train()(src, prev, bg)["image"]
        stats = {k: v.clone() for k, v in gen_batch.state_dict().items() if "running" in k}
        eval_batch = gen_batch.eval()(src, prev, bg)["image"]
        eval_running = gen_running.eval()(src, prev, bg)["image"]
    assert torch.allclose(eval_batch, train_mode, atol=1e-6)
    assert not torch.allclose(eval_running, train_mode, atol=1e-3)
    after = {k: v for k, v in gen_batch.state_dict().items() if "running" in k}
    assert all(torch.equal(after[k], stats[k]) for k in stats)  # evaluation leaves the running averages alone
