"""Evaluation metrics: video FID (I3D, 3D-ResNeXt-101), frame FID (Inception-v3), warping error.

Pure PyTorch/NumPy, no Prefect; pretrained weights only through ``models.weights`` (never random).
The evaluation task needs ``evaluate`` (honest per-metric values); the rest is for finer control.
"""

from models.lazy import lazy_face

# public name -> submodule that defines it; loaded on first use (models/lazy.py says why)
_EXPORTS = {
    "FeatureExtractor": "features",
    "NETWORKS": "features",
    "accumulate": "features",
    "clip_starts": "features",
    "iter_clips": "features",
    "iter_feature_batches": "features",
    "load_feature_network": "features",
    "FrechetResult": "frechet",
    "frechet_distance": "frechet",
    "PREPROCESSING": "preprocessing",
    "Preprocessing": "preprocessing",
    "preprocess_frames": "preprocessing",
    "EvaluationReport": "report",
    "METRICS": "report",
    "evaluate": "report",
    "weights_problem": "report",
    "FeatureStats": "stats",
    "RunningStats": "stats",
    "StatsKeyMismatchError": "stats",
    "StatsCache": "stats_cache",
    "stats_key": "stats_cache",
    "WarpError": "warp_error",
    "forward_backward_occlusion": "warp_error",
    "warping_error": "warp_error",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
