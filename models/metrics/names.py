"""The metric names users type (CLI, forms) and the metric names of ``models.metrics``.

Parameter models check names here when they are built, so an unknown metric is refused before any work
(not after a training run). A leaf: checking a name loads no feature network (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence

# metric name -> feature network (None: needs no weights)
METRICS: dict[str, str | None] = {
    "fid_i3d": "i3d",
    "fid_resnext101": "resnext101",
    "fid_inception": "inception",
    "warp_error": None,
    "psnr": None,
    "ssim": None,
}
FIRST_FRAME = "real"  # what every variant gets as frame 0 (tasks.synthesize's first_frame)
SCORED_FROM = 1  # frames [SCORED_FROM:] of every clip are scored, synthesized and real alike

DEFAULT_METRICS = ["fid-i3d", "fid-resnext", "fid-frame", "warp", "psnr", "ssim"]
METRIC_ALIASES = {"fid-i3d": "fid_i3d", "fid-resnext": "fid_resnext101", "fid-frame": "fid_inception",
                  "warp": "warp_error", "psnr": "psnr", "ssim": "ssim"}


def metric_names(names: Sequence[str]) -> list[str]:
    """User names (aliases or ``METRICS`` names) → ``METRICS`` names; unknown names are refused."""
    resolved = [METRIC_ALIASES.get(n.strip(), n.strip()) for n in names if n.strip()]
    unknown = [n for n in resolved if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; use {sorted(METRIC_ALIASES)} or {sorted(METRICS)}")
    if not resolved:
        raise ValueError("no metric named")
    return resolved
