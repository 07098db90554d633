"""How a metric value is shown, in one place for every page and artifact: label with unit and better
direction, and one rounding per metric (all read from ``models.metrics.names.SPECS``); and names made safe
for markdown artifacts. No torch import, so the review app can use it cheaply."""

from __future__ import annotations

import re
from collections.abc import Mapping

from models.metrics.names import SPECS

LABELS = {spec.name: (spec.label, spec.unit) for spec in SPECS}  # metric -> (name, unit or "")
BETTER = {spec.name: spec.better for spec in SPECS}
FORMATS = {spec.name: spec.fmt for spec in SPECS}
ARROW = {"lower": "↓", "higher": "↑"}
_SHORT = (("weights missing", "n/a — weights missing"), ("checksum mismatch", "n/a — checksum mismatch"),
          ("wrong key layout", "n/a — wrong weights file"), ("weights unusable", "n/a — weights unusable"),
          ("need >= 2", "n/a — too few samples"), ("no source flows", "n/a — no flows"),
          ("no real frames", "n/a — no real frames"), ("no reference", "n/a — no training frames"),
          ("no clip", "n/a — no clip"))
LABELLED = re.compile(r"(-?[0-9.]+(?:e-?[0-9]+)?) \(unverified weights\)")  # a value, with its weights' label


def header(metric: str) -> str:
    """e.g. "PSNR (dB) ↑", "FID I3D ↓"; an unknown metric keeps its name."""
    name, unit = LABELS.get(metric, (metric, ""))
    return f"{name}{f' ({unit})' if unit else ''} {ARROW.get(BETTER.get(metric, ''), '')}".rstrip()


def number(metric: str, value: float) -> str:
    return FORMATS.get(metric, "{:.4f}").format(value)


def too_few_samples(details: Mapping) -> bool:
    """A FID over fewer samples than feature dimensions: rank-deficient covariance, biased upward."""
    n = min(details.get("n_fake", 0) or 0, details.get("n_real", 0) or 0)
    return bool(details.get("feature_dim")) and n < details["feature_dim"]


def cell(metric: str, value: float | str, details: Mapping | None = None) -> str:
    """The short cell text: "12.35", "184.20 ⚠" (too few samples), "12.35 (unverified)", "n/a — weights missing"."""
    suffix = ""
    if isinstance(value, str):
        labelled = LABELLED.fullmatch(value)
        if not labelled:
            return next((short for key, short in _SHORT if key in value), "n/a")
        value, suffix = float(labelled.group(1)), " (unverified)"
    text = number(metric, value) + suffix
    return text + " ⚠" if details and too_few_samples(details) else text


def markdown_text(text: str) -> str:
    """A name (run, clip, dataset) safe inside markdown, table cells included: HTML and markup characters are
    shown, not interpreted."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def markdown_table(rows: list[dict[str, str]]) -> str:
    """Rows as a markdown table (its cells made safe): unlike Prefect's table widget, a markdown table wraps its
    cells, so a wide comparison fits the UI's artifact pane instead of being cut off."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(markdown_text(k) for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(markdown_text(row.get(k, "")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)
