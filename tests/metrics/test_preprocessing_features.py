import dataclasses

import numpy as np
import pytest
import torch

from models.metrics.features import (FeatureExtractor, NETWORKS, accumulate, iter_clips, random_feature_network)
from models.metrics.i3d import InceptionI3d
from models.metrics.preprocessing import PREPROCESSING, preprocess_frames


def test_value_ranges_per_network():
    black_white = np.zeros((2, 8, 8, 3), np.uint8)
    black_white[1] = 255
    i3d = preprocess_frames(black_white, PREPROCESSING["i3d"])
    assert i3d.shape == (2, 3, 224, 224)
    torch.testing.assert_close(i3d[0], torch.full_like(i3d[0], -1.0))
    torch.testing.assert_close(i3d[1], torch.full_like(i3d[1], 1.0))
    mean_pixel = np.broadcast_to(np.array([114.7748, 107.7354, 99.4750], np.float32), (1, 4, 4, 3))
    resnext = preprocess_frames(mean_pixel, PREPROCESSING["resnext101"])
    torch.testing.assert_close(resnext, torch.zeros(1, 3, 112, 112), atol=1e-4, rtol=0)
    inception = preprocess_frames(black_white, PREPROCESSING["inception"])
    assert inception.shape == (2, 3, 299, 299) and inception.min() == -1.0 and inception.max() == 1.0


def test_short_side_resize_then_center_crop_keeps_the_middle():
    prep = dataclasses.replace(PREPROCESSING["i3d"], size=4, antialias=False)
    frame = np.zeros((1, 4, 8, 3), np.uint8)
    frame[:, :, 2:6] = 255  # a bright middle band, outside columns dark
    out = preprocess_frames(frame, prep)
    assert out.shape == (1, 3, 4, 4)
    assert (out == 1.0).all()  # the crop is the middle 4 columns: all bright
    stretch = preprocess_frames(frame, dataclasses.replace(prep, resize="stretch"))
    assert stretch.min() < 0  # stretching keeps the dark sides


def test_iter_clips_windows_strides_and_streams():
    prep = dataclasses.replace(PREPROCESSING["i3d"], clip_len=4, clip_stride=3, size=8)
    video = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    clips = list(iter_clips(video, prep))
    assert len(clips) == 3  # starts 0, 3, 6; a window at 9 would need 13 frames
    assert clips[1].shape == (3, 4, 8, 8)
    torch.testing.assert_close(clips[1], preprocess_frames(video[3:7], prep).permute(1, 0, 2, 3))
    streamed = list(iter_clips((f for f in video), prep))
    assert all(torch.equal(a, b) for a, b in zip(clips, streamed, strict=True))
    assert list(iter_clips(video[:3], prep)) == []
    frames = list(iter_clips(torch.from_numpy(video), PREPROCESSING["inception"]))
    assert len(frames) == 12 and frames[0].shape == (3, 299, 299)


def test_video_features_batched_equal_unbatched_and_accumulate():
    prep = dataclasses.replace(PREPROCESSING["i3d"], clip_len=4, clip_stride=4, size=32)
    torch.manual_seed(0)
    extractor = FeatureExtractor("i3d", InceptionI3d(), prep, weights_sha256=None, weights_file=None)
    video = np.random.default_rng(1).integers(0, 256, (13, 40, 48, 3), dtype=np.uint8)
    batched = extractor.video_features(video, batch_size=2)
    single = extractor.video_features(video, batch_size=1)
    assert batched.shape == (3, 1024) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5)
    running = accumulate(extractor, [video, video[:8]], batch_size=2)
    assert running.count == 5


def test_random_network_is_marked_not_pretrained():
    extractor = random_feature_network("inception")
    assert not extractor.pretrained and extractor.weights_sha256 is None
    assert set(NETWORKS) == set(PREPROCESSING)


def test_preprocessing_rejects_non_rgb():
    with pytest.raises(ValueError):
        preprocess_frames(np.zeros((1, 8, 8)), PREPROCESSING["i3d"])


def test_preprocessing_table_rejects_nonsense():
    with pytest.raises(ValueError):
        dataclasses.replace(PREPROCESSING["i3d"], clip_stride=0)
    with pytest.raises(ValueError):
        dataclasses.replace(PREPROCESSING["i3d"], resize="squash")
