"""How NVIDIA's vid2vid draws keypoint curves (face edges, OpenPose limbs), reproduced for its encodings.

The released face and pose models were trained on inputs drawn this way, so their input encodings must be
drawn the same way, quirks included (facts read from NVIDIA/vid2vid ``data/keypoint2img.py``, 2e6d137;
no code taken from it):

- a run of 2 keypoints is joined by the least-squares line, 3 or more by a parabola (``scipy``'s
  ``curve_fit`` from its default start, as there), fitted along the axis of larger consecutive steps; a
  parabola whose leading coefficient exceeds 1 in magnitude is not drawn (where ``curve_fit`` gives up and
  raises, which stops the official loader, numpy's least-squares fit stands in);
- the curve is sampled at ``int(x_last - x_first)`` evenly spaced abscissae (old numpy truncated a float
  sample count), both coordinates then truncated to integers;
- each sample stamps the 2bw×2bw block of pixels offset by -bw..bw-1 (so 2×2 up-left of the point for
  bw=1), clamped to the image; with end points, a disc of radius 2bw at both ends;
- on a colour canvas a stamp paints its colour where every pixel it covers is black, and otherwise
  averages its colour into every pixel it covers (truncated to uint8), black ones included.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.optimize import curve_fit


def _line(x: np.ndarray, a: float, b: float) -> np.ndarray:
    return a * x + b


def _parabola(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a * x**2 + b * x + c


def fit_curve(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Integer pixel samples (x, y) of the curve through the keypoints, or (None, None) when too bent."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    if np.abs(np.diff(xs)).max() < np.abs(np.diff(ys)).max():  # steeper than diagonal: fit x as a function of y
        curve_y, curve_x = fit_curve(ys, xs)
        return (None, None) if curve_y is None else (curve_x, curve_y)
    model = _line if len(xs) < 3 else _parabola
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            params, _ = curve_fit(model, xs, ys)
        except RuntimeError:  # the official code stops here (e.g. a repeated abscissa); take the exact least squares
            params = np.polyfit(xs, ys, 1 if len(xs) < 3 else 2)
    if len(xs) >= 3 and abs(params[0]) > 1:
        return None, None
    if xs[0] > xs[-1]:
        xs = xs[::-1]
    samples = np.linspace(xs[0], xs[-1], int(xs[-1] - xs[0]))
    return samples.astype(int), model(samples, *params).astype(int)


def _paint(image: np.ndarray, yy: np.ndarray, xx: np.ndarray, colour: Sequence[int]) -> None:
    if image.ndim == 2:
        image[yy, xx] = colour[0]
        return
    if (image[yy, xx] == 0).all():
        image[yy, xx] = colour[:3]
    else:
        for c in range(3):
            image[yy, xx, c] = ((image[yy, xx, c].astype(float) + colour[c]) / 2).astype(np.uint8)


def stamp_curve(image: np.ndarray, xs: np.ndarray | None, ys: np.ndarray | None, bw: int = 1,
                colour: Sequence[int] = (255, 255, 255), end_points: bool = False) -> None:
    """Draw the sampled curve onto ``image`` (H×W or H×W×3 uint8) in place, block by block."""
    if xs is None or ys is None or not np.asarray(xs).size:
        return
    h, w = image.shape[:2]
    for i in range(-bw, bw):
        for j in range(-bw, bw):
            _paint(image, np.clip(ys + i, 0, h - 1), np.clip(xs + j, 0, w - 1), colour)
    if end_points:
        ends_y, ends_x = np.array([ys[0], ys[-1]]), np.array([xs[0], xs[-1]])
        for i in range(-2 * bw, 2 * bw):
            for j in range(-2 * bw, 2 * bw):
                if i * i + j * j < 4 * bw * bw:
                    _paint(image, np.clip(ends_y + i, 0, h - 1), np.clip(ends_x + j, 0, w - 1), colour)
