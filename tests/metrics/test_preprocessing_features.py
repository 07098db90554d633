import dataclasses

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from models.metrics.features import (FeatureExtractor, NETWORKS, accumulate, clip_starts, iter_clips,
                                     random_feature_network)
from models.metrics.i3d import InceptionI3d
from models.metrics.preprocessing import PREPROCESSING, hara_geometry, i3d_geometry, preprocess_frames


def test_value_ranges_per_network():
    black_white = np.zeros((2, 8, 8, 3), np.uint8)
    black_white[1] = 255
    i3d = preprocess_frames(black_white, PREPROCESSING["i3d"])
    assert i3d.shape == (2, 3, 224, 224)
    torch.testing.assert_close(i3d[0], torch.full_like(i3d[0], -1.0))
    torch.testing.assert_close(i3d[1], torch.full_like(i3d[1], 1.0))
    gray = np.full((1, 4, 4, 3), 115, np.uint8)
    resnext = preprocess_frames(gray, PREPROCESSING["resnext101"])
    expected = torch.tensor([115 - 114.7748, 115 - 107.7354, 115 - 99.4750]).view(1, 3, 1, 1).expand(1, 3, 112, 112)
    torch.testing.assert_close(resnext, expected, atol=1e-4, rtol=0)
    inception = preprocess_frames(black_white, PREPROCESSING["inception"])
    assert inception.shape == (2, 3, 299, 299) and inception.min() == -1.0 and inception.max() == 1.0


def test_i3d_crops_large_frames_without_resizing():
    # piergiaj/pytorch-i3d: short side >= 226 -> no resize; centre 224 at int(np.round((h - 224) / 2))
    frame = np.random.default_rng(0).integers(0, 256, (1, 301, 400, 3), dtype=np.uint8)
    prep = PREPROCESSING["i3d"]
    assert i3d_geometry(301, 400, prep) == (301, 400, 38, 88)  # (301-224)/2 = 38.5 -> 38 (half to even)
    out = preprocess_frames(frame, prep)
    expected = torch.from_numpy(frame[0, 38:262, 88:312].astype(np.float32)).permute(2, 0, 1) / 255 * 2 - 1
    torch.testing.assert_close(out[0], expected)


def test_i3d_upscales_short_side_below_226_by_the_same_factor():
    prep = PREPROCESSING["i3d"]
    # 64x128 (h x w): factor 226/64 = 3.53125 -> 226 x 452 (OpenCV rounds), crop offsets (1, 114)
    assert i3d_geometry(64, 128, prep) == (226, 452, 1, 114)
    # 100x150: factor 2.26 -> 226 x 339, offsets (1, 58) since (339-224)/2 = 57.5 -> 58 (half to even)
    assert i3d_geometry(100, 150, prep) == (226, 339, 1, 58)
    frame = np.random.default_rng(1).integers(0, 256, (1, 64, 128, 3), dtype=np.uint8)
    resized = cv2.resize(frame[0], dsize=(0, 0), fx=226 / 64, fy=226 / 64, interpolation=cv2.INTER_LINEAR)
    assert resized.shape == (226, 452, 3)
    expected = torch.from_numpy(resized[1:225, 114:338].astype(np.float32)).permute(2, 0, 1) / 255 * 2 - 1
    torch.testing.assert_close(preprocess_frames(frame, prep)[0], expected)


def test_resnext_truncates_the_long_side_and_rounds_the_offset():
    prep = PREPROCESSING["resnext101"]
    # Hara et al.: long side int(112 * 128 / 64) = 224, offset int(round((224 - 112) / 2)) = 56
    assert hara_geometry(64, 128, prep) == (112, 224, 0, 56)
    # 90x161: int(112 * 161 / 90) = int(200.36) = 200 (rounding up would give 201), offset 44
    assert hara_geometry(90, 161, prep) == (112, 200, 0, 44)
    # 112x173: already 112 high -> untouched, offset round(30.5) = 30 (half to even)
    assert hara_geometry(112, 173, prep) == (112, 173, 0, 30)
    frame = np.random.default_rng(2).integers(0, 256, (1, 90, 161, 3), dtype=np.uint8)
    resized = np.asarray(Image.fromarray(frame[0]).resize((200, 112), Image.BILINEAR)).astype(np.float32)
    mean = np.array([114.7748, 107.7354, 99.4750], np.float32)
    expected = torch.from_numpy(resized[:, 44:156] - mean).permute(2, 0, 1)
    torch.testing.assert_close(preprocess_frames(frame, prep)[0], expected)
    untouched = np.random.default_rng(3).integers(0, 256, (1, 112, 173, 3), dtype=np.uint8)
    expected = torch.from_numpy(untouched[0, :, 30:142].astype(np.float32) - mean).permute(2, 0, 1)
    torch.testing.assert_close(preprocess_frames(untouched, prep)[0], expected)


@pytest.mark.parametrize("n_frames, expected", [
    (30, [0, 14]),       # 0-15, then the tail window 14-29: every frame scored (before: 0-15 only)
    (32, [0, 16]),       # exact multiple: no extra window
    (40, [0, 16, 24]),   # 0-15, 16-31, tail 24-39
    (16, [0]), (5, [0]),  # shorter than a window: one loop-padded window
    (0, []),
])
def test_clip_starts_cover_every_frame(n_frames, expected):
    starts = clip_starts(n_frames, 16, 16)
    assert starts == expected
    covered = {t for s in starts for t in range(s, min(s + 16, n_frames))}
    assert covered == set(range(n_frames))


def test_iter_clips_windows_strides_tail_and_streams():
    prep = dataclasses.replace(PREPROCESSING["i3d"], clip_len=4, clip_stride=3, min_side=8, size=8)
    video = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    clips = list(iter_clips(video, prep))
    assert len(clips) == 4 and clip_starts(12, 4, 3) == [0, 3, 6, 8]  # 9 would need 13 frames: tail 8-11
    assert clips[1].shape == (3, 4, 8, 8)
    torch.testing.assert_close(clips[1], preprocess_frames(video[3:7], prep).permute(1, 0, 2, 3))
    torch.testing.assert_close(clips[3], preprocess_frames(video[8:12], prep).permute(1, 0, 2, 3))
    streamed = list(iter_clips((f for f in video), prep))
    assert all(torch.equal(a, b) for a, b in zip(clips, streamed, strict=True))
    short = list(iter_clips(video[:3], prep))  # loop padding: frames 0, 1, 2, 0
    assert len(short) == 1
    torch.testing.assert_close(short[0], preprocess_frames(video[[0, 1, 2, 0]], prep).permute(1, 0, 2, 3))
    frames = list(iter_clips(torch.from_numpy(video), PREPROCESSING["inception"]))
    assert len(frames) == 12 and frames[0].shape == (3, 299, 299)


def test_video_features_batched_equal_unbatched_and_accumulate():
    prep = dataclasses.replace(PREPROCESSING["i3d"], clip_len=4, clip_stride=4, size=32, min_side=40)
    torch.manual_seed(0)
    extractor = FeatureExtractor("i3d", InceptionI3d(), prep, weights_sha256=None, weights_file=None)
    video = np.random.default_rng(1).integers(0, 256, (13, 40, 48, 3), dtype=np.uint8)
    batched = extractor.video_features(video, batch_size=2)
    single = extractor.video_features(video, batch_size=1)
    assert batched.shape == (4, 1024) and batched.dtype == np.float32  # 0, 4, 8 and the tail 9-12
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5)
    running = accumulate(extractor, [video, video[:8]], batch_size=2)
    assert running.count == 6


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
    with pytest.raises(ValueError):
        dataclasses.replace(PREPROCESSING["i3d"], min_side=100)
