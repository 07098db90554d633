"""Honest metric reports: every requested metric is a number or a reason, and every number has a reference.

A FID from random or wrong weights looks like any other number, so it must never be produced: each
feature network is loaded through the weights registry before any video is read, and a metric whose
weights are missing, corrupt or of the wrong layout is reported as text, e.g.
``"not computed: weights missing (file weights/rgb_imagenet.pt)"``. The other metrics still run.

A number from weights with no registered checksum carries that label in its value,
e.g. ``"12.3456 (unverified weights)"``, so it can never be shown bare.

A number alone is not readable either, so the report also carries reference values computed the same
way on real data: the real clips' own warp error (what a perfectly stable video scores under the same
flows), and the FID of the real validation frames against the real training frames (the floor a model
can reach on this data with this many samples). Each FID says how many samples it rests on and which
weights file (sha256, origin) fed it.

The scoring protocol (``FIRST_FRAME``, ``SCORED_FROM``) is one for every variant: every model gets the
clip's real first frame as its first output (vid2vid needs previous frames; a frame-by-frame model
ignores them), and frame 0 is left out of every metric on both sides, so all variants are scored on the
same frames 1..T-1, each of them synthesized. Synthesized frames are scored from a lossless copy
(``models.metrics.lossless``), real frames from their PNG shards.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from models import weights as registry
from models.metrics.features import (NETWORKS, FeatureExtractor, Video, choose_weights, iter_feature_batches,
                                     load_feature_network)
from models.metrics.fidelity import fidelity
from models.metrics.frechet import FrechetResult
from models.metrics.names import FIRST_FRAME, METRICS, SCORED_FROM  # noqa: F401 - re-exported
from models.metrics.stats import FeatureStats, RunningStats
from models.metrics.stats_cache import StatsCache, stats_key
from models.metrics.warp_error import warping_error


WarpClip = tuple  # (synthesized frames, source flows t->t+1[, valid mask[, real frames]])


@dataclasses.dataclass
class EvaluationReport:
    values: dict[str, float | str]  # metric -> value, or "not computed: <reason>"
    details: dict[str, dict] = dataclasses.field(default_factory=dict)
    references: dict[str, float | str] = dataclasses.field(default_factory=dict)  # metric -> real-data value

    def rows(self) -> list[dict[str, str]]:
        """One row per metric, ready for a table artifact."""
        return [{"metric": k, "value": f"{v:.4f}" if isinstance(v, float) else v} for k, v in self.values.items()]


def scored(frames: np.ndarray) -> np.ndarray:
    """The frames of a clip that are scored (``SCORED_FROM`` on); flows of pairs among them: ``scored(flows)``."""
    return frames[SCORED_FROM:]


def weights_problem(network: str, weights_dir: str | os.PathLike[str] | None,
                    spec: registry.WeightSpec | None = None) -> str | None:
    """None if ``network``'s checkpoint can be used, else the "not computed: ..." text (cheap checks)."""
    spec = choose_weights(network, weights_dir, spec=spec).spec
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
    path = registry.expected_path(choose_weights(network, weights_dir, spec=spec).spec, weights_dir)
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


def _real_stats(extractors: Mapping[str, FeatureExtractor], videos: Iterable[Video], batch_size: int,
                cache: StatsCache | None, fingerprints: Sequence[str] | None) -> dict[str, FeatureStats]:
    """Per network: statistics of real videos, from ``cache`` when the fingerprints match, else computed (and stored)."""
    stats: dict[str, FeatureStats] = {}
    keys: dict[str, str] = {}
    for network, extractor in extractors.items():
        if cache is not None and fingerprints is not None:
            keys[network] = stats_key(network, extractor.weights_sha256 or "", extractor.preprocessing, fingerprints)
            hit = cache.get(network, keys[network])
            if hit is not None:
                stats[network] = hit
    to_compute = {n: e for n, e in extractors.items() if n not in stats}
    if to_compute:
        for network, running in _one_pass(to_compute, videos, batch_size).items():
            if running.count:
                stats[network] = running.finalize(key=keys.get(network, ""))
                if network in keys:
                    cache.put(network, keys[network], stats[network])  # type: ignore[union-attr]
    return stats


def _fid(fake: FeatureStats | None, real: FeatureStats | None, what: str) -> FrechetResult | str:
    n_fake = fake.count if fake else 0
    n_real = real.count if real else 0
    if fake is None or real is None or n_fake < 2 or n_real < 2:
        return f"not computed: need >= 2 samples per side, got {n_fake} {what} and {n_real} real"
    return fake.frechet_distance(real)


def evaluate(metrics: Sequence[str], weights_dir: str | os.PathLike[str] | None, *,
             fake_videos: Iterable[Video] = (), real_videos: Iterable[Video] = (),
             reference_videos: Iterable[Video] | None = None,
             warp_clips: Iterable[WarpClip] | None = None,
             pairs: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
             cache: StatsCache | None = None, real_fingerprints: Sequence[str] | None = None,
             reference_fingerprints: Sequence[str] | None = None,
             specs: Mapping[str, registry.WeightSpec] | None = None, batch_size: int = 4) -> EvaluationReport:
    """Compute ``metrics`` (names from ``METRICS``) over synthesized vs. real videos, with references.

    Videos are (T, H, W, 3) uint8 arrays/tensors, already cut to the scored frames (``scored``); each
    iterable is read once, all networks fed in the same pass. Real statistics come from ``cache`` when
    ``real_fingerprints`` (the input shards' fingerprints) are given and a matching entry exists;
    otherwise they are computed and stored. ``reference_videos`` (real frames of *other* clips, e.g. the
    training split; ``reference_fingerprints`` for the cache) give each FID its floor: real vs. real.
    ``warp_clips`` yields (synthesized frames, source forward flows t->t+1[, valid mask[, real frames]]);
    with real frames the real clips' own warp error is the reference. ``pairs`` yields (synthesized, real)
    clips for PSNR/SSIM. ``specs`` overrides registry entries per network.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise KeyError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
    specs = dict(specs or {})
    values: dict[str, float | str] = {}
    details: dict[str, dict] = {}
    references: dict[str, float | str] = {}
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

    real_stats = _real_stats(extractors, real_videos, batch_size, cache, real_fingerprints)
    floor_stats = (_real_stats(extractors, reference_videos, batch_size, cache, reference_fingerprints)
                   if reference_videos is not None and extractors else {})
    fake_running = _one_pass(extractors, fake_videos, batch_size) if extractors else {}
    fake_stats = {n: r.finalize() for n, r in fake_running.items() if r.count}

    for metric in metrics:
        network = METRICS[metric]
        if metric in values:
            continue
        if metric == "warp_error":
            values[metric], details[metric], references[metric] = _warp(warp_clips)
            continue
        if metric in ("psnr", "ssim"):
            continue
        extractor = extractors[network]
        real, fake = real_stats.get(network), fake_stats.get(network)
        result = _fid(fake, real, "synthesized")
        values[metric] = _labelled(result, extractor.verification)
        floor = floor_stats.get(network)
        references[metric] = (_labelled(_fid(real, floor, "real validation"), extractor.verification)
                              if reference_videos is not None else "not computed: no reference (training) frames given")
        details[metric] = {**(dataclasses.asdict(result) if not isinstance(result, str) else {}),
                           "n_fake": fake.count if fake else 0, "n_real": real.count if real else 0,
                           "n_reference": floor.count if floor else 0,
                           "feature_dim": NETWORKS[network].feature_dim,
                           "weights_file": extractor.weights_file, "weights_sha256": extractor.weights_sha256,
                           "weights_verification": extractor.verification, "weights_origin": extractor.weights_origin}
    if {"psnr", "ssim"} & set(metrics):
        fid_values = _fidelity(pairs)
        for metric in ("psnr", "ssim"):
            if metric in metrics:
                values[metric], details[metric] = fid_values[metric]
    return EvaluationReport(values={m: values[m] for m in metrics}, details=details, references=references)


def _labelled(result: FrechetResult | str, verification: str) -> float | str:
    """The FID value; from weights with no registered checksum, the value with that label (never bare)."""
    if isinstance(result, str):
        return result
    return result.value if verification != registry.UNVERIFIED else f"{result.value:.4f} ({registry.UNVERIFIED} weights)"


def _warp(warp_clips: Iterable[WarpClip] | None) -> tuple[float | str, dict, float | str]:
    if warp_clips is None:
        return "not computed: no source flows given", {}, "not computed: no source flows given"
    per_clip, real_per_clip = [], []
    for item in warp_clips:
        frames, flows = item[0], item[1]
        valid = item[2] if len(item) > 2 else None
        value = warping_error(frames, flows, valid).clip
        if np.isfinite(value):
            per_clip.append(value)
        if len(item) > 3 and item[3] is not None:
            real = warping_error(item[3], flows, valid).clip
            if np.isfinite(real):
                real_per_clip.append(real)
    reference: float | str = (float(np.mean(real_per_clip)) if real_per_clip
                              else "not computed: no real frames given")
    if not per_clip:
        return "not computed: no clip had a valid frame pair", {}, reference
    return float(np.mean(per_clip)), {"per_clip": per_clip, "n_clips": len(per_clip),
                                      "real_per_clip": real_per_clip}, reference


def _fidelity(pairs: Iterable[tuple[np.ndarray, np.ndarray]] | None) -> dict[str, tuple[float | str, dict]]:
    if pairs is None:
        reason = "not computed: no real frames paired with the synthesized ones"
        return {"psnr": (reason, {}), "ssim": (reason, {})}
    scores = [fidelity(fake, real) for fake, real in pairs]
    if not scores:
        reason = "not computed: no clip to compare"
        return {"psnr": (reason, {}), "ssim": (reason, {})}
    frames = sum(s.frames for s in scores)
    return {"psnr": (float(np.mean([s.psnr for s in scores])),
                     {"per_clip": [s.psnr for s in scores], "n_clips": len(scores), "n_frames": frames}),
            "ssim": (float(np.mean([s.ssim for s in scores])),
                     {"per_clip": [s.ssim for s in scores], "n_clips": len(scores), "n_frames": frames})}
