"""The report gives a number only when the registered weights are there and verified."""

import math

import numpy as np
import pytest

from models.metrics.report import METRICS, evaluate, weights_problem
from models.metrics.stats_cache import StatsCache
from tests.metrics import standins


def _videos(seed, n=2, frames=2, brightness=0):
    rng = np.random.default_rng(seed)
    return [np.clip(rng.integers(0, 200, (frames, 24, 24, 3)) + brightness, 0, 255).astype(np.uint8)
            for _ in range(n)]


def _static_clip_with_flow():
    frame = np.random.default_rng(5).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    return np.stack([frame] * 3), np.zeros((2, 12, 12, 2))


def test_missing_weights_are_reported_as_text_with_the_file(tmp_path):
    report = evaluate(["fid_i3d", "fid_resnext101", "fid_inception", "warp_error"], tmp_path,
                      fake_videos=_videos(0), real_videos=_videos(1), warp_clips=[_static_clip_with_flow()])
    assert report.values["fid_i3d"] == f"not computed: weights missing (file {tmp_path / 'rgb_imagenet.pt'})"
    assert report.values["fid_resnext101"] == (
        f"not computed: weights missing (file {tmp_path / 'resnext-101-kinetics.pth'})")
    assert report.values["fid_inception"].startswith("not computed: weights missing (file ")
    assert report.values["warp_error"] == 0.0  # weights-free metrics still run
    assert list(report.values) == ["fid_i3d", "fid_resnext101", "fid_inception", "warp_error"]
    assert {row["metric"] for row in report.rows()} == set(METRICS) - {"psnr", "ssim"}


def test_corrupt_or_wrong_layout_weights_are_reported_not_used(tmp_path):
    standins.save_inception(tmp_path)  # the file name carries the official sha prefix; the stand-in differs
    (tmp_path / "rgb_imagenet.pt").write_bytes(b"not a checkpoint")  # fails its registered git blob id
    (tmp_path / "resnext-101-kinetics.pth").write_bytes(b"not a checkpoint")  # unverified: fails to load
    report = evaluate(["fid_inception", "fid_i3d", "fid_resnext101"], tmp_path, fake_videos=_videos(0),
                      real_videos=_videos(1))
    assert report.values["fid_inception"].startswith("not computed: weights checksum mismatch (file ")
    assert report.values["fid_i3d"].startswith("not computed: weights checksum mismatch (file ")
    assert report.values["fid_resnext101"].startswith("not computed: weights unusable (file ")
    assert "truncated or corrupt" in report.values["fid_resnext101"]
    assert weights_problem("resnext101", tmp_path / "none").startswith("not computed: weights missing")


def test_fid_computed_with_registered_weights_and_real_stats_cached(tmp_path):
    _, spec = standins.save_inception(tmp_path)
    cache = StatsCache(tmp_path / "cache")
    real = _videos(1)
    kwargs = dict(specs={"inception": spec}, cache=cache, real_fingerprints=["shard-a", "shard-b"])
    same = evaluate(["fid_inception"], tmp_path, fake_videos=real, real_videos=real, **kwargs)
    assert isinstance(same.values["fid_inception"], float)
    assert abs(same.values["fid_inception"]) < 1e-6 * same.details["fid_inception"]["trace_sqrt"]
    assert same.details["fid_inception"]["n_real"] == 4
    assert len(list((tmp_path / "cache").glob("inception-*.npz"))) == 1
    # Second run: real statistics come from the cache (no real videos given at all).
    far = evaluate(["fid_inception"], tmp_path, fake_videos=_videos(2, brightness=60), real_videos=(), **kwargs)
    # Random-init stand-in features barely vary (std ~1e-9), so compare with the identical-set value.
    assert far.values["fid_inception"] > 1e3 * max(abs(same.values["fid_inception"]), 1e-30)
    # Other shards: a cache miss, and without real videos the metric says why it has no number.
    other = evaluate(["fid_inception"], tmp_path, fake_videos=real, real_videos=(),
                     specs={"inception": spec}, cache=cache, real_fingerprints=["shard-c"])
    assert other.values["fid_inception"].startswith("not computed: need >= 2 clips per side")


def test_warp_error_needs_flows_and_unknown_metrics_raise(tmp_path):
    assert evaluate(["warp_error"], tmp_path).values["warp_error"] == "not computed: no source flows given"
    with pytest.raises(KeyError):
        evaluate(["fid_bogus"], tmp_path)
    clip, flow = _static_clip_with_flow()
    noisy = clip.copy()
    noisy[1] = 255 - noisy[1]
    value = evaluate(["warp_error"], tmp_path, warp_clips=[(clip, flow), (noisy, flow, None)]).values["warp_error"]
    assert isinstance(value, float) and value > 0 and not math.isnan(value)
