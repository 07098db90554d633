"""Evaluation metrics: video FID (I3D, 3D-ResNeXt-101), frame FID (Inception-v3), warping error.

Pure PyTorch/NumPy, no Prefect; pretrained weights only through ``models.weights`` (never random).
The evaluation task needs ``evaluate`` (honest per-metric values); the rest is for finer control.
"""

from models.metrics.features import (FeatureExtractor, NETWORKS, accumulate, clip_starts, iter_clips, iter_feature_batches,
                                     load_feature_network)
from models.metrics.frechet import FrechetResult, frechet_distance
from models.metrics.preprocessing import PREPROCESSING, Preprocessing, preprocess_frames
from models.metrics.report import METRICS, EvaluationReport, evaluate, weights_problem
from models.metrics.stats import FeatureStats, RunningStats, StatsKeyMismatchError
from models.metrics.stats_cache import StatsCache, stats_key
from models.metrics.warp_error import WarpError, forward_backward_occlusion, warping_error

__all__ = [
    "METRICS", "NETWORKS", "PREPROCESSING", "EvaluationReport", "FeatureExtractor", "FeatureStats", "FrechetResult",
    "Preprocessing", "RunningStats", "StatsCache", "StatsKeyMismatchError", "WarpError", "accumulate", "clip_starts", "evaluate",
    "forward_backward_occlusion", "frechet_distance", "iter_clips", "iter_feature_batches", "load_feature_network",
    "preprocess_frames", "stats_key", "warping_error", "weights_problem",
]
