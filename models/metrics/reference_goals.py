"""The goals of the shipped reference models (issue 20), checked on the demo's evaluation of them.

Street (reference vid2vid on the held-out synthetic clips): PSNR >= 20 dB, frame FID below the reference
frame-by-frame baseline's, warp error at most 1.5x the real clips'. Face (reference vid2vid on the carphone
clip's held-out quarter): PSNR and warp error better than its frame-by-frame twin. Whether buildings, trees,
road markings and cars (or the same person) are recognisable is a person's judgement: those goals point at the
contact sheet instead of pretending to a number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from models.metrics.goals import PSNR_GOAL_DB, Goal

WARP_FACTOR_GOAL = 1.5
_LABELLED = re.compile(r"^(-?[0-9.]+(?:e-?[0-9]+)?) \(unverified weights\)$")


def number(value: object) -> float | None:
    """A metric value as a float: a number, or a number labelled as from unverified weights; else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _LABELLED.match(value) if isinstance(value, str) else None
    return float(match.group(1)) if match else None


def _missing(*values: float | None) -> bool:
    return any(v is None for v in values)


def street_goals(vid2vid: Mapping[str, object], baseline: Mapping[str, object], real: Mapping[str, object],
                 sheet: str) -> list[Goal]:
    """``vid2vid`` / ``baseline``: the reference models' metric values; ``real``: the real-frames row's."""
    psnr = number(vid2vid.get("psnr"))
    fid, fid_base = number(vid2vid.get("fid_inception")), number(baseline.get("fid_inception"))
    warp, warp_real = number(vid2vid.get("warp_error")), number(real.get("warp_error"))
    return [
        Goal(f"street reference vid2vid PSNR >= {PSNR_GOAL_DB:.0f} dB", None if psnr is None else psnr >= PSNR_GOAL_DB,
             "not computed" if psnr is None else f"{psnr:.2f} dB"),
        Goal("street reference vid2vid frame FID below the reference baseline's",
             None if _missing(fid, fid_base) else fid < fid_base,
             "not computed (frame FID weights)" if _missing(fid, fid_base) else f"{fid:.2f} vs {fid_base:.2f}"),
        Goal(f"street reference vid2vid warp error <= {WARP_FACTOR_GOAL}x the real clips'",
             None if _missing(warp, warp_real) else warp <= WARP_FACTOR_GOAL * warp_real,
             "not computed" if _missing(warp, warp_real) else
             f"{warp:.5f} vs real {warp_real:.5f} ({warp / warp_real:.2f}x)" if warp_real else f"{warp:.5f}"),
        Goal("street: buildings, trees, road markings and cars recognisable at frame 23", None,
             f"a person's judgement: see {sheet}"),
    ]


def face_goals(vid2vid: Mapping[str, object], baseline: Mapping[str, object], sheet: str) -> list[Goal]:
    psnr, psnr_base = number(vid2vid.get("psnr")), number(baseline.get("psnr"))
    warp, warp_base = number(vid2vid.get("warp_error")), number(baseline.get("warp_error"))
    return [
        Goal("face reference vid2vid PSNR above its frame-by-frame twin's",
             None if _missing(psnr, psnr_base) else psnr > psnr_base,
             "not computed" if _missing(psnr, psnr_base) else f"{psnr:.2f} vs {psnr_base:.2f} dB"),
        Goal("face reference vid2vid warp error below its frame-by-frame twin's",
             None if _missing(warp, warp_base) else warp < warp_base,
             "not computed" if _missing(warp, warp_base) else f"{warp:.5f} vs {warp_base:.5f}"),
        Goal("face: the same person recognisable at the last held-out frame", None,
             f"a person's judgement: see {sheet}"),
    ]
