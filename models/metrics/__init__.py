"""Evaluation metrics: video FID (I3D, 3D-ResNeXt-101), frame FID (Inception-v3), warping error.

Pure PyTorch/NumPy; pretrained weights only through ``models.weights``. Entry points:
``report.evaluate`` (honest per-metric values), ``features.load_feature_network``,
``frechet.frechet_distance``, ``stats.FeatureStats``, ``stats_cache.StatsCache``,
``warp_error.warping_error``.
"""
