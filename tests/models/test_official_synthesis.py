"""Synthesis with official semantics (NVIDIA's test.py): per-scale recurrence, L seed frames, per-image batch norm.

The reference here is the generator driven by hand, one step at a time, with ``ScaleHistory``: the sequence
the official ``Vid2VidModelG.inference`` runs (seeds from the first L frames, then source frames t-L..t and
every scale's own previous outputs).
"""

from __future__ import annotations

import copy

import pytest
import torch

from models.vid2vid.batch import encode_source, frame_background_mask
from models.vid2vid.generator import ScaleHistory, Vid2VidGenerator
from models.vid2vid.inference import official_semantics, seed_frames, synthesize

from .helpers_vid2vid import moving_clip, tiny_config

T, H, W = 5, 32, 64
OFFICIAL = {"ngf": 8, "n_downsampling": 1, "n_blocks": 2, "n_blocks_local": 1, "n_scales": 2, "n_prev": 2,
            "norm": "batch", "foreground_classes": [13], "composition": "official", "test_norm_stats": "batch"}


def official_config(**generator: object):
    return tiny_config(name="official_standin", generator={**OFFICIAL, **generator})


def single_config():
    """A frame-by-frame first-frame generator on the labels alone (as the official pix2pixHD G: no instance map)."""
    return tiny_config(name="official_standin_single", frame_by_frame=True,
                       input={"sources": [{"name": "labels", "stage": "semantic", "encoding": "one_hot",
                                           "num_classes": 19}]},
                       generator={"ngf": 8, "n_downsampling": 2, "n_blocks": 1, "n_scales": 1, "n_prev": 0,
                                  "norm": "instance", "use_fg_prior": False, "use_flow_warping": False},
                       discriminator={"use_video_discriminator": False})


def standin(config, seed: int = 0) -> Vid2VidGenerator:
    torch.manual_seed(seed)
    generator = Vid2VidGenerator(config)
    with torch.no_grad():  # visible flows and non-trivial batch norm affine parameters
        for scale in generator.scales:
            scale.flow_out[1].weight.normal_(0, 0.05)
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 1)
                module.running_var.uniform_(0.5, 4)
    return generator.eval()


def by_hand(generator: Vid2VidGenerator, clip: dict, seeds: torch.Tensor, raw_first: bool = False) -> list[torch.Tensor]:
    """Frames L..T-1 of the official recurrence, one generator call per frame, each scale its own history."""
    config, L = generator.config, generator.n_prev
    src = encode_source(config, {"semantic": clip["semantic"], "instance": clip["instance"]})  # (B, T, C, H, W)
    history = ScaleHistory(L, generator.n_scales)
    history.start(seeds)
    frames = []
    with torch.no_grad():
        for t in range(L, src.shape[1]):
            bg = frame_background_mask(config, clip["semantic"][:, t], src[:, t])
            out = generator(src[:, t - L:t + 1], history.previous(), bg, raw_only=raw_first and t == L,
                            return_pyramid=True)
            history.push(out["pyramid"])
            frames.append(out["image"])
    return frames


def _frames(clip: dict, b: int | None = 0, real: int = 0) -> list[dict]:
    pick = (lambda x, t: x[b, t]) if b is not None else (lambda x, t: x[:, t])
    return [{"semantic": pick(clip["semantic"], t), "instance": pick(clip["instance"], t),
             **({"real": pick(clip["image"], t)} if t < real else {})} for t in range(clip["semantic"].shape[1])]


@pytest.fixture(scope="module")
def clip() -> dict:
    return moving_clip(T=T, H=H, W=W)


@pytest.fixture(scope="module")
def generator() -> Vid2VidGenerator:
    return standin(official_config())


def test_real_first_frames_and_per_scale_recurrence_match_the_generator_driven_by_hand(generator, clip):
    assert official_semantics(generator.config) and seed_frames(generator.config, "real") == 2
    out = [o["image"] for o in synthesize(generator, _frames(clip, real=2), first_frame="real")]
    assert len(out) == T
    assert torch.equal(out[0][0], clip["image"][0, 0]) and torch.equal(out[1][0], clip["image"][0, 1])
    expected = by_hand(generator, clip, clip["image"][:, :2])
    assert all(torch.equal(a, b) for a, b in zip(out[2:], expected, strict=True))
    # the same seeds through first_image (B, L, 3, H, W)
    again = [o["image"] for o in synthesize(generator, _frames(clip), first_frame="real", first_image=clip["image"][:, :2])]
    assert all(torch.equal(a, b) for a, b in zip(out, again, strict=True))
    with pytest.raises(ValueError, match="first 2 real frame"):
        list(synthesize(generator, _frames(clip, real=1), first_frame="real"))


def test_per_scale_history_differs_from_pooled_finest_frames(generator, clip):
    """Feeding back only the finest frames (pooled for the coarse scale) is another recurrence."""
    src = encode_source(generator.config, {"semantic": clip["semantic"], "instance": clip["instance"]})
    pooled = clip["image"][:, :2]
    frames = []
    with torch.no_grad():
        for t in range(2, T):
            bg = frame_background_mask(generator.config, clip["semantic"][:, t], src[:, t])
            image = generator(src[:, t - 2:t + 1], pooled, bg)["image"]
            pooled = torch.cat([pooled[:, 1:], image[:, None]], 1)
            frames.append(image)
    official = by_hand(generator, clip, clip["image"][:, :2])
    assert torch.equal(frames[0], official[0])  # same seeds: the first step agrees
    assert (frames[-1] - official[-1]).abs().max() > 1e-4  # then the coarse scale's own outputs take over


def test_zeros_first_frames_are_zero_and_the_first_generated_frame_is_raw(generator, clip):
    out = list(synthesize(generator, _frames(clip), first_frame="zeros", keep=("image", "warped")))
    assert all(torch.equal(o["image"], torch.zeros(1, 3, H, W)) for o in out[:2])
    assert "warped" not in out[2] and "warped" in out[3]  # no warp for the first generated frame (--no_first_img)
    expected = by_hand(generator, clip, torch.zeros(1, 2, 3, H, W), raw_first=True)
    assert all(torch.equal(a["image"], b) for a, b in zip(out[2:], expected, strict=True))


def test_single_frame_generator_makes_the_seeds_from_its_own_inputs(generator, clip):
    single = Vid2VidGenerator(single_config()).eval()
    out = [o["image"] for o in synthesize(generator, _frames(clip), first_frame="model", single_frame_generator=single)]
    with torch.no_grad():
        labels = encode_source(single.config, {"semantic": clip["semantic"][:, :2]})  # (1, 2, 19, H, W): no instance
        assert labels.shape[2] == 19
        seeds = torch.stack([single(labels[:, t:t + 1], None)["image"] for t in range(2)], 1)
    assert torch.equal(out[0], seeds[:, 0]) and torch.equal(out[1], seeds[:, 1])
    assert all(torch.equal(a, b) for a, b in zip(out[2:], by_hand(generator, clip, seeds), strict=True))
    with pytest.raises(ValueError, match="single_frame_generator"):
        list(synthesize(generator, _frames(clip), first_frame="model"))


def test_batch_norm_uses_each_images_own_statistics(generator):
    """The official test never calls .eval(): batch norm normalises every image by its own statistics, so
    a batch of two clips gives each clip's frames alone, and the frames are those of the network in train mode."""
    two = moving_clip(T=4, H=H, W=W, B=2, seed=3)
    both = [o["image"] for o in synthesize(generator, _frames(two, b=None, real=2), first_frame="real")]
    alone = [[o["image"] for o in synthesize(generator, _frames(two, b=b, real=2), first_frame="real")] for b in (0, 1)]
    for t in range(4):
        assert torch.allclose(both[t], torch.cat([alone[0][t], alone[1][t]]), atol=1e-5)
    train_mode = copy.deepcopy(generator).train()
    one = {k: v[:1] for k, v in two.items()}
    expected = by_hand(train_mode, one, one["image"][:, :2])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(alone[0][2:], expected, strict=True))
    running = standin(official_config(test_norm_stats="running"))
    other = [o["image"] for o in synthesize(running, _frames(one, real=2), first_frame="real")]
    assert (other[2] - alone[0][2]).abs().max() > 1e-3  # running averages would give other frames
