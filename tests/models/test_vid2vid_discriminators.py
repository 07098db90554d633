import torch

from models.vid2vid.discriminators import Discriminators, temporal_indices
from models.vid2vid.trainer import Vid2VidTrainer

from .helpers_vid2vid import tiny_config


def test_temporal_indices_subsample_by_powers_of_k() -> None:
    # K = 3: scale 0 = consecutive frames, scale 1 = every 3rd, scale 2 = every 9th, all ending at `end`
    assert temporal_indices(20, 0, 3) == [18, 19, 20]
    assert temporal_indices(20, 1, 3) == [14, 17, 20]
    assert temporal_indices(20, 2, 3) == [2, 11, 20]
    assert temporal_indices(20, 1, 4) == [8, 12, 16, 20]
    assert temporal_indices(20, 2, 3, base=2) == [12, 16, 20]  # configurable base: every 2**s-th frame


def test_discriminator_output_structure() -> None:
    config = tiny_config()
    d = Discriminators(config)
    image_in = torch.randn(2, 3 + 20, 32, 64)
    video_in = [torch.randn(2, 3 * 3 + 2 * 2, 32, 64), None]
    out = d(image_in, video_in)
    assert len(out["image"]) == config.discriminator.num_d
    assert len(out["image"][0]) == config.discriminator.n_layers + 2
    assert out["image"][1][-1].shape[-1] < out["image"][0][-1].shape[-1]  # second scale sees a 2x smaller input
    assert out["video"][1] is None and len(out["video"][0]) == config.discriminator.num_d


def test_video_discriminator_gets_the_subsampled_frames_and_composed_flows() -> None:
    config = tiny_config(discriminator={"n_scales_temporal": 2}, train={"max_seq_len": 8})
    trainer = Vid2VidTrainer(config)
    B, T, H, W = 1, 8, 32, 64
    real = torch.arange(T, dtype=torch.float32).view(1, T, 1, 1, 1).expand(B, T, 3, H, W)  # frame t holds t
    fake = -real[:, 4:]  # this chunk: fake frames 4..7 hold -t
    history = [real[:, t] * 10 for t in range(4)]  # earlier fake frames hold 10 t
    ref = torch.zeros(B, T - 1, 2, H, W)
    ref[:, :, 0] = torch.arange(1, T, dtype=torch.float32).view(1, T - 1, 1, 1)  # flow into frame t: dx = t
    windows = [[[5, 6, 7]], [[1, 4, 7]]]
    inputs = trainer._video_inputs(windows, real, fake, history, 4, ref)
    fine, coarse = inputs
    frames_real = fine[0, 0:9:3, 0, 0].tolist()
    frames_fake = fine[1, 0:9:3, 0, 0].tolist()
    assert frames_real == [5, 6, 7] and frames_fake == [-5, -6, -7]
    assert coarse[0, 0:9:3, 0, 0].tolist() == [1, 4, 7] and coarse[1, 0:9:3, 0, 0].tolist() == [10, -4, -7]
    # flows: scale 0 uses flow into 6 (dx 6) and into 7; scale 1 composes 4->3->2->1 (2+3+4) and 7->..->4
    assert fine[0, 9, 0, 0] == 6 and fine[0, 11, 0, 0] == 7
    assert coarse[0, 9, 0, 0] == 2 + 3 + 4 and coarse[0, 11, 0, 0] == 5 + 6 + 7
    # windows sampled for a chunk always fit inside the sequence and end in the chunk
    for start in (2, 4, 6):
        for s, group in enumerate(trainer._video_windows(start, 2)):
            if group is not None:
                (idx,) = group
                assert idx[0] >= 0 and start <= idx[-1] < start + 2
                assert idx == temporal_indices(idx[-1], s, 3)


def test_official_video_windows_are_every_kth_window_of_generated_frames() -> None:
    """NVIDIA's get_skipped_frames: per temporal scale, the windows ending at the chunk's last frame and every
    K-th frame before it inside the chunk, only where every frame was generated (index >= n_prev)."""
    config = tiny_config(discriminator={"n_scales_temporal": 2, "video_windows": "official"}, train={"max_seq_len": 8})
    trainer = Vid2VidTrainer(config)  # n_prev 2, K 3: spans 2 and 6
    fine, coarse = trainer._video_windows(2, 4)
    assert fine == [[3, 4, 5]] and coarse is None  # the window ending at 2 would start on given frames
    fine, coarse = trainer._video_windows(6, 4)
    assert fine == [[7, 8, 9], [4, 5, 6]] and coarse == [[3, 6, 9]]
    fine, coarse = trainer._video_windows(6, 1)
    assert fine == [[4, 5, 6]] and coarse is None
