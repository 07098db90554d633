import gc

import psutil
import pytest
import torch

from models.vid2vid.generator import Vid2VidGenerator
from models.vid2vid.inference import optimize_for_inference, synthesize

from .helpers_vid2vid import moving_clip, tiny_config


@pytest.fixture(scope="module")
def generator() -> Vid2VidGenerator:
    torch.manual_seed(0)
    config = tiny_config(input={"width": 32, "height": 16}, generator={"n_scales": 1, "ngf": 4, "n_blocks": 0, "n_downsampling": 1})
    return Vid2VidGenerator(config).eval()


def _frames(n: int):
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 19, (16, 32), generator=g)
    for t in range(n):
        yield {"semantic": torch.roll(base, t, dims=1), "instance": torch.zeros(16, 32, dtype=torch.long)}


def _live_tensors() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is torch.Tensor)


def _peak(generator, n: int, keep_outputs: bool = False) -> tuple[int, int]:
    """(peak live tensors, peak RSS growth in bytes) while consuming n synthesized frames."""
    process = psutil.Process()
    rss0, tensors, rss, kept = process.memory_info().rss, [], [], []
    for i, out in enumerate(synthesize(generator, _frames(n))):
        if keep_outputs:
            kept.append(out["image"])
        if i % 10 == 9:
            rss.append(process.memory_info().rss - rss0)
        if i + 1 in (n // 2, n):  # counting objects is slow: twice per run
            tensors.append(_live_tensors())
    return max(tensors), max(rss)


def test_memory_does_not_grow_with_sequence_length(generator) -> None:
    _peak(generator, 20)  # warm up allocator and caches
    tensors_20, rss_20 = _peak(generator, 20)
    tensors_200, rss_200 = _peak(generator, 200)
    assert tensors_200 <= tensors_20 + 2
    assert rss_200 <= rss_20 + 8 * 2**20
    # the probe can fail: a consumer that keeps every frame is caught
    leaky_tensors, _ = _peak(generator, 40, keep_outputs=True)
    assert leaky_tensors >= tensors_20 + 30


def test_first_frame_modes_and_label_remap(generator) -> None:
    clip = moving_clip(T=3, H=16, W=32)
    frames = [{"semantic": clip["semantic"][0, t], "instance": clip["instance"][0, t]} for t in range(3)]
    real = list(synthesize(generator, frames, first_frame="real", first_image=clip["image"][0, 0]))
    assert torch.equal(real[0]["image"][0], clip["image"][0, 0]) and len(real) == 3
    batched = [{k: v[None] for k, v in f.items()} for f in frames]  # (B, H, W) frames work the same
    again = list(synthesize(generator, batched, first_frame="real", first_image=clip["image"][:, 0]))
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(real, again))
    zeros = list(synthesize(generator, frames, first_frame="zeros", keep=("image", "flow", "mask")))
    assert zeros[1]["flow"].shape == (1, 2, 16, 32) and not torch.equal(zeros[2]["image"], real[2]["image"])
    single = Vid2VidGenerator(
        tiny_config(
            input={"width": 32, "height": 16},
            frame_by_frame=True,
            generator={"n_scales": 1, "ngf": 4, "n_blocks": 0, "n_downsampling": 1, "n_prev": 0, "use_flow_warping": False},
            discriminator={"use_video_discriminator": False},
        )
    ).eval()
    model = list(synthesize(generator, frames, first_frame="model", single_frame_generator=single))
    with torch.no_grad():
        from models.vid2vid.batch import encode_source, frame_background_mask

        src = encode_source(generator.config, {"semantic": clip["semantic"][:, 0], "instance": clip["instance"][:, 0]})
        expected = single(src.unsqueeze(1), None, frame_background_mask(generator.config, clip["semantic"][:, 0], src))["image"]
    assert torch.allclose(model[0]["image"], expected)
    # semantic manipulation: vegetation (8) -> building (2) changes frames containing vegetation only
    veg = [{**f, "semantic": torch.where(f["semantic"] == 0, torch.tensor(8), f["semantic"])} for f in frames]
    as_building = [{**f, "semantic": torch.where(f["semantic"] == 0, torch.tensor(2), f["semantic"])} for f in frames]
    remapped = [o["image"] for o in synthesize(generator, veg, label_map={8: 2})]
    direct = [o["image"] for o in synthesize(generator, as_building)]
    original = [o["image"] for o in synthesize(generator, veg)]
    assert all(torch.equal(a, b) for a, b in zip(remapped, direct))
    assert not torch.equal(remapped[1], original[1])
    with pytest.raises(ValueError):
        list(synthesize(generator, frames, first_frame="real"))


def test_channels_last_inference_matches(generator) -> None:
    frames = list(_frames(3))
    plain = [o["image"] for o in synthesize(generator, frames)]
    fast = optimize_for_inference(Vid2VidGenerator(generator.config))
    fast.load_state_dict(generator.state_dict())
    fast = optimize_for_inference(fast, channels_last=True)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(plain, (o["image"] for o in synthesize(fast, frames))))
