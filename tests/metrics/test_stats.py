import numpy as np
import pytest

from models.metrics.preprocessing import PREPROCESSING
from models.metrics.stats import FeatureStats, RunningStats, StatsKeyMismatchError
from models.metrics.stats_cache import StatsCache, stats_key


def test_running_stats_in_batches_equal_numpy_cov():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(103, 7)) * 50 + 1e4  # large offset: a naive sum of squares loses digits
    running = RunningStats()
    for start in range(0, 103, 10):
        running.update(feats[start:start + 10].astype(np.float32))
    stats = running.finalize()
    ref = feats.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(stats.mean, ref.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(ref, rowvar=False), rtol=1e-9, atol=1e-9)
    assert stats.count == 103


def test_running_stats_rejects_nan_and_size_change():
    running = RunningStats()
    running.update(np.zeros((2, 3)))
    with pytest.raises(ValueError):
        running.update(np.zeros((2, 4)))
    with pytest.raises(ValueError):
        running.update(np.full((1, 3), np.nan))
    with pytest.raises(ValueError):
        RunningStats().finalize()


def test_save_load_roundtrip_and_key_check(tmp_path):
    rng = np.random.default_rng(1)
    stats = FeatureStats.from_features(rng.normal(size=(30, 5)), key="abc", meta={"split": "val"})
    path = stats.save(tmp_path / "sub" / "s.npz")
    loaded = FeatureStats.load(path, expected_key="abc")
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.cov, stats.cov)
    assert (loaded.count, loaded.key, loaded.meta) == (30, "abc", {"split": "val"})
    assert loaded.frechet_distance(stats).value == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(StatsKeyMismatchError):
        FeatureStats.load(path, expected_key="other")
    assert [p.name for p in path.parent.iterdir()] == ["s.npz"]  # no temp file left behind


def test_stats_key_depends_on_every_input_but_not_shard_order():
    prep = PREPROCESSING["i3d"]
    base = stats_key("i3d", "sha", prep, ["a", "b"])
    assert base == stats_key("i3d", "sha", prep, ["b", "a"])
    others = {
        stats_key("resnext101", "sha", prep, ["a", "b"]),
        stats_key("i3d", "sha2", prep, ["a", "b"]),
        stats_key("i3d", "sha", PREPROCESSING["resnext101"], ["a", "b"]),
        stats_key("i3d", "sha", prep, ["a", "c"]),
    }
    assert base not in others and len(others) == 4


def test_cache_computes_once_and_misses_on_other_key(tmp_path):
    cache = StatsCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return FeatureStats.from_features(np.arange(12.0).reshape(4, 3))

    key = stats_key("i3d", "sha", PREPROCESSING["i3d"], ["shard1"])
    first = cache.get_or_compute("i3d", key, compute)
    second = cache.get_or_compute("i3d", key, compute)
    assert len(calls) == 1 and second.key == key == first.key
    np.testing.assert_array_equal(first.cov, second.cov)
    assert cache.get("i3d", stats_key("i3d", "sha", PREPROCESSING["i3d"], ["shard2"])) is None


def test_frechet_needs_two_samples_per_side():
    one = FeatureStats.from_features(np.ones((1, 3)))
    two = FeatureStats.from_features(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError):
        one.frechet_distance(two)
