"""Every metric once: its name, the name users type, its feature network, and how it is shown.

``SPECS`` is the one table; the lookups below (``METRICS``, ``METRIC_ALIASES``, ``DEFAULT_METRICS``) and
``models.metric_display``'s labels, directions and roundings are read from it, so adding a metric is one entry.
Parameter models check names here when they are built, so an unknown metric is refused before any work
(not after a training run). A leaf: checking a name loads no feature network (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MetricSpec:
    name: str  #: the name in results, tables and artifacts
    alias: str  #: what users type (``--metrics``, forms)
    network: str | None  #: its feature network (``models.metrics.features``), None when it needs no weights
    weights: str | None  #: the ``models.weights`` entry that fills that network
    label: str  #: shown in table headers
    unit: str  #: "" when unitless
    better: Literal["lower", "higher"]
    fmt: str  #: one rounding everywhere


SPECS: tuple[MetricSpec, ...] = (
    MetricSpec("fid_i3d", "fid-i3d", "i3d", "i3d_rgb_imagenet", "FID I3D", "", "lower", "{:.2f}"),
    MetricSpec("fid_resnext101", "fid-resnext", "resnext101", "resnext101_kinetics", "FID ResNeXt-101", "", "lower",
               "{:.2f}"),
    MetricSpec("fid_inception", "fid-frame", "inception", "inception_fid", "frame FID (Inception-v3)", "", "lower",
               "{:.2f}"),
    MetricSpec("warp_error", "warp", None, None, "warp error", "MSE, RGB 0–1", "lower", "{:.5f}"),
    MetricSpec("psnr", "psnr", None, None, "PSNR", "dB", "higher", "{:.2f}"),
    MetricSpec("ssim", "ssim", None, None, "SSIM", "0–1", "higher", "{:.3f}"),
)
SPEC = {spec.name: spec for spec in SPECS}
NETWORK_WEIGHTS: dict[str, str] = {spec.network: spec.weights for spec in SPECS if spec.network and spec.weights}

METRICS: dict[str, str | None] = {spec.name: spec.network for spec in SPECS}  # name -> feature network
FIRST_FRAME = "real"  # what every variant gets as frame 0 (tasks.synthesize's first_frame)
SCORED_FROM = 1  # frames [SCORED_FROM:] of every clip are scored, synthesized and real alike

DEFAULT_METRICS = [spec.alias for spec in SPECS]
METRIC_ALIASES = {spec.alias: spec.name for spec in SPECS}


def metric_names(names: Sequence[str]) -> list[str]:
    """User names (aliases or ``METRICS`` names) → ``METRICS`` names; unknown names are refused."""
    resolved = [METRIC_ALIASES.get(n.strip(), n.strip()) for n in names if n.strip()]
    unknown = [n for n in resolved if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; use {sorted(METRIC_ALIASES)} or {sorted(METRICS)}")
    if not resolved:
        raise ValueError("no metric named")
    return resolved
