"""Preference statistics: the Wilson score interval for a binomial proportion (the paper reports A / B
preference with the number of votes; the interval says how far that number can be trusted)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of successes/total; (0, 1) when there are no votes."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
