"""The official vid2vid face encoding (edge2face models): 15 channels built from 68 iBUG facial landmarks.

Facts from NVIDIA/vid2vid ``data/face_dataset.py`` (2e6d137), reproduced here (no code taken from it):

- the 68 landmarks get 15 more: the jaw's inner points 1..15 mirrored above the line through jaw points 0
  and 16, at 2/3 of their distance (integer pixels), in reverse order (ids 68..82) - an upper face contour;
- 14 polylines (``FACE_EDGES``, 8 parts): the closed face contour; each eyebrow; the nose bridge
  28-31, the nostrils 31..35 and back 35-28; each eye's upper and lower lid; the outer lips' upper and
  lower halves; the inner lips' upper and lower halves. Each polyline is drawn in runs of 3 keypoints
  overlapping by one (``official_drawing``: curve fits, 2×2 stamps);
- channel 0: every polyline (255) plus Canny edges of the whole frame (``skimage.feature.canny`` with its
  defaults on PIL's grey conversion) outside the face parts (the parts filled as polygons), added as
  uint8 (a pixel both on a polyline and a Canny edge wraps to 254, as there);
- channels 1..14: per polyline, the L1 distance (OpenCV 3×3 mask) to it, divided by 3, clipped to 255;
- the model reads all 15 as [0, 1] (x / 255, no normalisation to [-1, 1]): input encoding
  ``face_edge_distance``.

The official test additionally crops the face box (2.5× the landmarks' width, from the first frame) and
resizes it to 512 (bilinear); here the encoding is computed on the clip's frames as ingested, so feed face
crops at the model's size for the released model's framing.

Landmarks come from imported files (dlib / the official ``keypoints/*.txt``: 68 lines ``x,y``) - the
released model's own kind - or from mediapipe FaceMesh mapped onto the 68 (``MEDIAPIPE_TO_IBUG68``), an
approximation: another detector, whose points sit where the table puts them, not where dlib would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from models.preprocess.base import (Frame, Output, PerFrameFileImport, PreprocessInputError, PreprocessSetupError,
                                   check_frames)
from models.preprocess.mediapipe_client import MediapipeBackend
from models.preprocess.official_drawing import fit_curve, stamp_curve

N_CHANNELS = 15

# The 68 iBUG landmarks from mediapipe FaceMesh's 478 (468 + irises; indices < 468 only). Each group samples
# one of mediapipe's documented contours (mediapipe.solutions.face_mesh FACEMESH_*) at evenly spaced positions
# (position round(k·(n-1)/(m-1)), halves to even, of the n contour points for the m iBUG points; subject's
# right = image left):
# - jaw 0..16: the face oval's lower half 127-234-93-132-58-172-136-150-149-176-148-152 and its mirror to 356
#   (positions 0, 1, 3, 4, 6, 7, 8, 10, 11 of 12);
# - brows 17..21 / 22..26: the upper brow contours 70-63-105-66-107 and 336-296-334-293-300 (outer -> inner ->
#   outer, as iBUG);
# - nose bridge 27..30: the midline 168-6-197-195-5-4-1 (positions 0, 2, 4, 6); nostrils 31..35: the nose's
#   lower contour 98-97-2-326-327;
# - eyes 36..41 / 42..47: corners 33, 133 / 362, 263, and the lids' contours (9 points corner to corner)
#   at positions 3 and 5: 160, 158 (upper), 153, 144 (lower) / 385, 387, 373, 380;
# - outer lips 48..59: corners 61, 291, the upper 61-185-40-39-37-0-267-269-270-409-291 and lower
#   291-375-321-405-314-17-84-181-91-146-61 contours (11 points) at positions 2, 3, 5, 7, 8;
# - inner lips 60..67: corners 78, 308, the upper 78-191-80-81-82-13-312-311-310-415-308 and lower
#   308-324-318-402-317-14-87-178-88-95-78 contours at positions 2, 5, 8.
MEDIAPIPE_TO_IBUG68: tuple[int, ...] = (
    127, 234, 132, 58, 136, 150, 149, 148, 152, 377, 378, 379, 365, 288, 361, 454, 356,  # jaw 0..16
    70, 63, 105, 66, 107,  # right brow 17..21
    336, 296, 334, 293, 300,  # left brow 22..26
    168, 197, 5, 1,  # nose bridge 27..30
    98, 97, 2, 326, 327,  # nostrils 31..35
    33, 160, 158, 133, 153, 144,  # right eye 36..41
    362, 385, 387, 263, 373, 380,  # left eye 42..47
    61, 40, 39, 0, 269, 270, 291, 321, 405, 17, 181, 91,  # outer lips 48..59
    78, 80, 13, 310, 308, 318, 14, 88,  # inner lips 60..67
)

_FACE_CONTOUR = [*range(0, 17), *range(68, 83), 0]
# (part label, polylines) in the official order: the 14 distance maps follow the polylines in this order
FACE_PARTS: tuple[tuple[int, tuple[tuple[int, ...], ...]], ...] = (
    (1, (tuple(_FACE_CONTOUR),)),                                   # face contour (closed, with the upper half)
    (2, (tuple(range(17, 22)),)),                                   # right eyebrow
    (2, (tuple(range(22, 27)),)),                                   # left eyebrow
    (3, ((28, 31), tuple(range(31, 36)), (35, 28))),                # nose
    (4, ((36, 37, 38, 39), (39, 40, 41, 36))),                      # right eye
    (4, ((42, 43, 44, 45), (45, 46, 47, 42))),                      # left eye
    (5, (tuple(range(48, 55)), (54, 55, 56, 57, 58, 59, 48))),      # outer lips
    (6, (tuple(range(60, 65)), (64, 65, 66, 67, 60))),              # inner lips
)
FACE_EDGES: tuple[tuple[int, ...], ...] = tuple(edge for _, edges in FACE_PARTS for edge in edges)
assert len(FACE_EDGES) == N_CHANNELS - 1


def mediapipe_to_ibug68(landmarks: np.ndarray) -> np.ndarray:
    """N×2+ mediapipe FaceMesh landmarks in pixels (N = 468 or 478) → 68×2 iBUG landmarks in pixels."""
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.ndim != 2 or landmarks.shape[0] < 468 or landmarks.shape[1] < 2:
        raise ValueError(f"expected 468 or 478 mediapipe landmarks (N×2 or N×3), got {landmarks.shape}")
    return landmarks[list(MEDIAPIPE_TO_IBUG68), :2].copy()


def with_upper_face(keypoints: np.ndarray) -> np.ndarray:
    """68×2 → 83×2: the jaw's inner points mirrored to 2/3 above the line through its ends (integer pixels)."""
    jaw = keypoints[:17].astype(np.int32)
    baseline = (jaw[0, 1] + jaw[-1, 1]) / 2
    upper = jaw[1:-1].copy()
    upper[:, 1] = baseline + (baseline - upper[:, 1]) * 2 // 3
    return np.vstack((keypoints, upper[::-1]))


def part_labels(keypoints83: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """H×W uint8: each face part filled as one polygon with its label (1 contour .. 6 inner lips), 0 outside."""
    labels = np.zeros(shape, np.uint8)
    for label, edges in FACE_PARTS:
        points = keypoints83[[i for edge in edges for i in edge]].astype(np.int32)
        cv2.fillPoly(labels, pts=[points], color=label)
    return labels


def canny_edges(frame: Frame) -> np.ndarray:
    """H×W bool: scikit-image's Canny (its defaults) on PIL's grey conversion, as the official loader."""
    try:
        from skimage import feature
    except ImportError:
        raise PreprocessSetupError("the official face encoding needs scikit-image (skimage.feature.canny): "
                                   "pip install scikit-image==0.26.0 (a declared dependency)") from None
    return feature.canny(np.asarray(Image.fromarray(frame).convert("L")))


def face15_encoding(frame: Frame, keypoints: np.ndarray | None, edges: np.ndarray | None = None) -> np.ndarray:
    """H×W×15 uint8 for one frame and its 68×2 landmarks (pixels); ``keypoints`` None (no face found): the
    Canny edges alone and every distance map at its maximum (255). ``edges``: precomputed Canny (tests)."""
    h, w = frame.shape[:2]
    canny = canny_edges(frame) if edges is None else np.asarray(edges, bool)
    out = np.empty((h, w, N_CHANNELS), np.uint8)
    if keypoints is None:
        out[..., 0] = canny.astype(np.uint8) * 255
        out[..., 1:] = 255
        return out
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.shape != (68, 2):
        raise PreprocessInputError(f"the face encoding needs 68×2 landmarks, got {keypoints.shape}")
    points = with_upper_face(keypoints)
    all_edges = np.zeros((h, w), np.uint8)
    for channel, edge in enumerate(FACE_EDGES, start=1):
        this_edge = np.zeros((h, w), np.uint8)
        for start in range(0, max(1, len(edge) - 1), 2):  # runs of 3 keypoints sharing their ends
            run = list(edge[start:start + 3])
            curve_x, curve_y = fit_curve(points[run, 0], points[run, 1])
            stamp_curve(all_edges, curve_x, curve_y)
            stamp_curve(this_edge, curve_x, curve_y)
        distance = cv2.distanceTransform(255 - this_edge, cv2.DIST_L1, 3)
        out[..., channel] = np.clip(distance / 3, 0, 255).astype(np.uint8)
    outside = part_labels(points, (h, w)) == 0
    all_edges += ((canny & outside) * 255).astype(np.uint8)  # uint8 arithmetic: 255 + 255 wraps to 254
    out[..., 0] = all_edges
    return out


def read_landmarks(path: Path, shape: tuple[int, int], scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """68×2 landmarks from a text file (68 lines ``x,y`` as the official ``keypoints/*.txt``, or
    whitespace-separated as dlib tools write); ``scale`` maps the file's pixels onto the clip's."""
    try:
        rows = [line for line in Path(path).read_text().splitlines() if line.strip()]
        points = np.array([[float(v) for v in re.split(r"[,\s]+", row.strip())] for row in rows], np.float64)
    except (OSError, ValueError) as exc:
        raise PreprocessInputError(f"{path}: not a landmarks file of 'x,y' lines ({exc})") from None
    if points.shape != (68, 2) or not np.isfinite(points).all():
        raise PreprocessInputError(f"{path}: expected 68 landmarks of x,y (iBUG / dlib layout), got "
                                   f"{points.shape[0] if points.ndim else 0} rows of shape {points.shape[1:]}")
    points = points * np.asarray(scale, np.float64)
    h, w = shape
    if points[:, 0].max() > w * 1.5 or points[:, 1].max() > h * 1.5 or points.min() < -0.5 * max(h, w):
        raise PreprocessInputError(f"{path}: landmarks reach ({points[:, 0].max():.0f}, {points[:, 1].max():.0f}), far "
                                   f"outside the {w}x{h} frame: landmarks of another resolution? (source_size=WxH)")
    return points


class LandmarksFace15(PerFrameFileImport):
    """face15 importer: ``<import_dir>/<clip>/*.txt``, one 68-landmark file per frame in name order."""

    pattern, kind, listing = "*.txt", "landmark", "landmark *.txt"
    name = "landmarks"

    def __init__(self, clip_dir: Path, source_size: tuple[int, int] | None = None) -> None:
        super().__init__(clip_dir)
        self.source_size = source_size

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        scale = (1.0, 1.0) if self.source_size is None else (w / self.source_size[0], h / self.source_size[1])
        outputs = []
        for frame in frames:
            points = read_landmarks(self.next_file(), (h, w), scale)
            outputs.append({"payload": face15_encoding(frame, points), "empty": False})
        return outputs


class MediapipeFace15(MediapipeBackend):
    """face15 backend: mediapipe FaceMesh (side venv) → the 68 iBUG points (rounded to whole pixels, as dlib
    gives them) → the official 15 channels. An approximation of the released model's dlib landmarks."""

    name = "mediapipe"
    task = "face"

    def __init__(self, min_confidence: float = 0.5) -> None:
        self.config = {"max_faces": 1, "min_confidence": min_confidence}

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        outputs = []
        for frame in frames:
            reply, _ = self.worker.process(frame)
            faces = reply["faces"]
            points = None
            if faces:
                mesh = np.asarray(faces[0], np.float64)[:, :2] * np.array([w, h], np.float64)
                points = np.round(mediapipe_to_ibug68(mesh))
            outputs.append({"payload": face15_encoding(frame, points), "empty": points is None})
        return outputs
