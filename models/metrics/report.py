"""Honest metric reports: every requested metric is either a number or a reason it is not one.

A FID from random or wrong weights looks like any other number, so it must never be produced: each
feature network is loaded through the weights registry before any video is read, and a metric whose
weights are missing, corrupt or of the wrong layout is reported as text, e.g.
``"not computed: weights missing (file weights/rgb_imagenet.pt)"``. The other metrics still run.
A number from weights with no registered checksum carries that label in its value,
e.g. ``"12.3456 (unverified weights)"``, so it can never be shown bare.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from models import weights as registry
from models.metrics.features import NETWORKS, FeatureExtractor, Video, iter_feature_batches, load_feature_network
from models.metrics.stats import FeatureStats, RunningStats
from models.metrics.stats_cache import StatsCache, stats_key
from models.metrics.warp_error import warping_error

# metric name -> feature network (None: needs no weights)
METRICS: dict[str, str | None] = {
    "fid_i3d": "i3d",
    "fid_resnext101": "resnext101",
    "fid_inception": "inception",
    "warp_error": None,
}

WarpClip = tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray | None]


@dataclasses.dataclass
class EvaluationReport:
    values: dict[str, float | str]  # metric -> value, or "not computed: <reason>"
    details: dict[str, dict] = dataclasses.field(default_factory=dict)

    def rows(self) -> list[dict[str, str]]:
        """One row per metric, ready for a table artifact."""
        return [{"metric": k, "value": f"{v:.4f}" if isinstance(v, float) else v} for k, v in self.values.items()]


def weights_problem(network: str, weights_dir: str | os.PathLike[str] | None,
                    spec: registry.WeightSpec | None = None) -> str | None:
    """None if ``network``'s checkpoint can be used, else the "not computed: ..." text (cheap checks)."""
    spec = spec or registry.get_spec(NETWORKS[network].weights)
    path = registry.expected_path(spec, weights_dir)
    try:
        registry.resolve(spec, weights_dir)
        registry.verify_checksum(spec, path)
    except registry.MissingWeightsError:
        return f"not computed: weights missing (file {path})"
    except registry.ChecksumMismatchError:
        return f"not computed: weights checksum mismatch (file {path})"
    return None


def _load(network: str, weights_dir: str | os.PathLike[str] | None,
          spec: registry.WeightSpec | None) -> FeatureExtractor | str:
    problem = weights_problem(network, weights_dir, spec)
    if problem:
        return problem
    path = registry.expected_path(spec or registry.get_spec(NETWORKS[network].weights), weights_dir)
    try:
        return load_feature_network(network, weights_dir, spec=spec)
    except registry.KeyLayoutError:
        return f"not computed: weights have the wrong key layout (file {path})"
    except registry.WeightsError as exc:
        return f"not computed: weights unusable (file {path}): {exc}"


def _one_pass(extractors: Mapping[str, FeatureExtractor], videos: Iterable[Video], batch_size: int) -> dict[str, RunningStats]:
    running = {name: RunningStats() for name in extractors}
    for video in videos:
        if len(extractors) > 1 and not hasattr(video, "shape"):
            video = np.stack(list(video))  # a frame iterator can be read only once; several networks need it
        for name, extractor in extractors.items():
            for feats in iter_feature_batches(extractor, video, batch_size=batch_size):
                running[name].update(feats)
    return running


def evaluate(metrics: Sequence[str], weights_dir: str | os.PathLike[str] | None, *,
             fake_videos: Iterable[Video] = (), real_videos: Iterable[Video] = (),
             warp_clips: Iterable[WarpClip] | None = None, cache: StatsCache | None = None,
             real_fingerprints: Sequence[str] | None = None,
             specs: Mapping[str, registry.WeightSpec] | None = None, batch_size: int = 4) -> EvaluationReport:
    """Compute ``metrics`` (names from ``METRICS``) over synthesized vs. real videos.

    Videos are (T, H, W, 3) uint8 arrays/tensors; each iterable is read once, all networks fed in the
    same pass. Real statistics come from ``cache`` when ``real_fingerprints`` (the input shards'
    fingerprints) are given and a matching entry exists; otherwise they are computed and stored.
    ``warp_clips`` yields (synthesized frames, source forward flows t->t+1[, valid mask]).
    ``specs`` overrides registry entries per network (e.g. a registered sha256 of a local file).
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
    specs = dict(specs or {})
    values: dict[str, float | str] = {}
    details: dict[str, dict] = {}
    extractors: dict[str, FeatureExtractor] = {}
    for metric in metrics:
        network = METRICS[metric]
        if network is None:
            continue
        loaded = _load(network, weights_dir, specs.get(network))
        if isinstance(loaded, str):
            values[metric] = loaded
        else:
            extractors[network] = loaded

    real_stats: dict[str, FeatureStats] = {}
    keys: dict[str, str] = {}
    for network, extractor in extractors.items():
        if cache is not None and real_fingerprints is not None:
            keys[network] = stats_key(network, extractor.weights_sha256 or "", extractor.preprocessing,
                                      real_fingerprints)
            hit = cache.get(network, keys[network])
            if hit is not None:
                real_stats[network] = hit
    to_compute = {n: e for n, e in extractors.items() if n not in real_stats}
    if to_compute:
        for network, running in _one_pass(to_compute, real_videos, batch_size).items():
            if running.count:
                stats = running.finalize(key=keys.get(network, ""))
                real_stats[network] = stats
                if network in keys:
                    cache.put(network, keys[network], stats)  # type: ignore[union-attr]
    fake_running = _one_pass(extractors, fake_videos, batch_size) if extractors else {}

    for metric in metrics:
        network = METRICS[metric]
        if metric in values:
            continue
        if network is None:
            values[metric], details[metric] = _warp(warp_clips)
            continue
        real = real_stats.get(network)
        fake = fake_running[network]
        n_real = real.count if real else 0
        if n_real < 2 or fake.count < 2:
            values[metric] = f"not computed: need >= 2 clips per side, got {fake.count} synthesized and {n_real} real"
            continue
        result = fake.finalize().frechet_distance(real)
        verification = extractors[network].verification
        values[metric] = (result.value if verification != registry.UNVERIFIED
                          else f"{result.value:.4f} ({registry.UNVERIFIED} weights)")
        details[metric] = {**dataclasses.asdict(result), "n_fake": fake.count, "n_real": n_real,
                           "weights_file": extractors[network].weights_file,
                           "weights_sha256": extractors[network].weights_sha256,
                           "weights_verification": verification}
    return EvaluationReport(values={m: values[m] for m in metrics}, details=details)


def _warp(warp_clips: Iterable[WarpClip] | None) -> tuple[float | str, dict]:
    if warp_clips is None:
        return "not computed: no source flows given", {}
    per_clip = []
    for item in warp_clips:
        frames, flows = item[0], item[1]
        valid = item[2] if len(item) > 2 else None
        value = warping_error(frames, flows, valid).clip
        if np.isfinite(value):
            per_clip.append(value)
    if not per_clip:
        return "not computed: no clip had a valid frame pair", {}
    return float(np.mean(per_clip)), {"per_clip": per_clip, "n_clips": len(per_clip)}
