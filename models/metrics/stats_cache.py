"""Cache of real-data feature statistics, one npz per (network, weights, preprocessing, input shards).

The key is a sha256 over everything the statistics depend on, so a changed weights file, a changed
preprocessing table entry or a re-ingested shard gives a new key instead of stale numbers. Shard
fingerprints are sorted: the statistics do not depend on the order clips were read in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from models.metrics.preprocessing import Preprocessing
from models.metrics.stats import FeatureStats

CACHE_FORMAT_VERSION = 1


def stats_key(network: str, weights_sha256: str, preprocessing: Preprocessing | str,
              shard_fingerprints: Iterable[str]) -> str:
    """sha256 hex of the canonical JSON of the inputs that determine a set of statistics."""
    prep = preprocessing.fingerprint() if isinstance(preprocessing, Preprocessing) else str(preprocessing)
    payload = {
        "version": CACHE_FORMAT_VERSION,
        "network": network,
        "weights_sha256": weights_sha256,
        "preprocessing": prep,
        "shards": sorted(str(f) for f in shard_fingerprints),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class StatsCache:
    """Folder of ``<network>-<key[:16]>.npz``; the full key is stored inside and checked on read."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, network: str, key: str) -> Path:
        return self.directory / f"{network}-{key[:16]}.npz"

    def get(self, network: str, key: str) -> FeatureStats | None:
        path = self.path(network, key)
        if not path.is_file():
            return None
        stats = FeatureStats.load(path)
        return stats if stats.key == key else None  # a 16-hex prefix collision is a miss, not a hit

    def put(self, network: str, key: str, stats: FeatureStats) -> Path:
        return dataclasses.replace(stats, key=key).save(self.path(network, key))

    def get_or_compute(self, network: str, key: str, compute: Callable[[], FeatureStats]) -> FeatureStats:
        cached = self.get(network, key)
        if cached is not None:
            return cached
        stats = dataclasses.replace(compute(), key=key)
        self.put(network, key, stats)
        return stats
