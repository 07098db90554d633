"""Feature statistics (mean, covariance, count): accumulated in one pass, saved and compared.

Real-data statistics are expensive (thousands of clips through a 3D CNN) and reused for every model
evaluated on the same split, so they are a value of their own: accumulated batch by batch in float64
(Chan et al.'s pairwise update, so long streams lose no precision), saved as npz with the cache key
they were computed under, and checked against that key when loaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from models.metrics.frechet import FrechetResult, frechet_distance


class StatsKeyMismatchError(ValueError):
    """A statistics file was computed under another key (network, weights, preprocessing or data)."""


@dataclasses.dataclass(frozen=True)
class FeatureStats:
    """Mean and unbiased covariance (ddof=1, as ``np.cov``) of ``count`` feature vectors."""

    mean: np.ndarray
    cov: np.ndarray
    count: int
    key: str = ""
    meta: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_features(cls, features: np.ndarray, *, key: str = "", meta: dict | None = None) -> FeatureStats:
        running = RunningStats()
        running.update(features)
        return running.finalize(key=key, meta=meta)

    def frechet_distance(self, other: FeatureStats, **kwargs: float) -> FrechetResult:
        if self.count < 2 or other.count < 2:
            raise ValueError(f"need >= 2 samples on each side for a covariance, got {self.count} and {other.count}")
        return frechet_distance(self.mean, self.cov, other.mean, other.cov, **kwargs)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Atomic npz write (temp file in the same folder, fsync, rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, mean=self.mean, cov=self.cov, count=np.int64(self.count),
                     key=np.str_(self.key), meta=np.str_(json.dumps(self.meta, sort_keys=True)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, expected_key: str | None = None) -> FeatureStats:
        with np.load(path, allow_pickle=False) as data:
            stats = cls(mean=data["mean"].astype(np.float64), cov=data["cov"].astype(np.float64),
                        count=int(data["count"]), key=str(data["key"]), meta=json.loads(str(data["meta"])))
        if expected_key is not None and stats.key != expected_key:
            raise StatsKeyMismatchError(f"{path} holds statistics for key {stats.key!r}, not {expected_key!r}")
        return stats


class RunningStats:
    """Streaming mean/covariance in float64; ``update`` with (N, D) batches, then ``finalize``."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None  # sum of outer products of deviations from the mean

    def update(self, features: np.ndarray) -> None:
        batch = np.asarray(features, dtype=np.float64)
        if batch.ndim != 2:
            raise ValueError(f"expected (N, D) features, got shape {batch.shape}")
        n = batch.shape[0]
        if n == 0:
            return
        if not np.isfinite(batch).all():
            raise ValueError("features contain NaN or inf")
        b_mean = batch.mean(axis=0)
        centered = batch - b_mean
        b_m2 = centered.T @ centered
        if self.mean is None:
            self.count, self.mean, self.m2 = n, b_mean, b_m2
            return
        if batch.shape[1] != self.mean.shape[0]:
            raise ValueError(f"feature size changed from {self.mean.shape[0]} to {batch.shape[1]}")
        total = self.count + n
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + b_m2 + np.outer(delta, delta) * (self.count * n / total)
        self.count = total

    def finalize(self, *, key: str = "", meta: dict | None = None) -> FeatureStats:
        if self.mean is None or self.m2 is None:
            raise ValueError("no features were accumulated")
        cov = self.m2 / max(self.count - 1, 1)
        return FeatureStats(mean=self.mean.copy(), cov=cov, count=self.count, key=key, meta=dict(meta or {}))
