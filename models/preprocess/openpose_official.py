"""OpenPose JSON → the rendering NVIDIA's released pose2body models read (their last 3 input channels).

Facts from NVIDIA/vid2vid ``data/keypoint2img.py`` / ``data/pose_dataset.py`` (2e6d137), reproduced here
(no code taken from them); the drawing primitives are in ``official_drawing``:

- per person: BODY_25 joints with confidence > 0.01 count; a hand's finger counts when all its 5 joints
  exceed 0.01; a face part's polyline when all its points exceed 0.1 (OpenPose's 70-point face);
  everything else sits at (0, 0), and any limb with an x coordinate of exactly 0 is not drawn;
- 24 body limbs (4 head limbs first, then torso, arms, legs, feet) each in its own colour (``POSE_LIMBS``),
  stamped 6×6 with discs of radius 6 at both ends; then each hand's finger bones (2×2, end discs, one
  colour per finger); then the face's polylines (brows, nose, eyes, outer lips) in white, bone by bone;
- each person is drawn on its own black canvas and the canvases are added as uint8 (overlaps wrap);
- drawn at the frame size the keypoints belong to, then resized by nearest neighbour; read as an RGB
  picture normalised to [-1, 1] (input encoding ``rendering``).

Test-time settings of the released model: no random drops, face labels kept, hands and face drawn.
A person's missing ``face_keypoints_2d`` / ``hand_*_keypoints_2d`` (OpenPose run without --face/--hand)
counts as not detected. Our mediapipe pose stage draws another rendering (``pose.py``), not this one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from models.preprocess.base import Frame, Output, PerFrameFileImport, PreprocessInputError, check_frames
from models.preprocess.official_drawing import fit_curve, stamp_curve

# (BODY_25 joint pair, RGB colour), in drawing order
POSE_LIMBS: tuple[tuple[tuple[int, int], tuple[int, int, int]], ...] = (
    ((17, 15), (153, 0, 153)), ((15, 0), (153, 0, 102)), ((0, 16), (102, 0, 153)), ((16, 18), (51, 0, 153)),
    ((0, 1), (153, 0, 51)), ((1, 8), (153, 0, 0)),
    ((1, 2), (153, 51, 0)), ((2, 3), (153, 102, 0)), ((3, 4), (153, 153, 0)),
    ((1, 5), (102, 153, 0)), ((5, 6), (51, 153, 0)), ((6, 7), (0, 153, 0)),
    ((8, 9), (0, 153, 51)), ((9, 10), (0, 153, 102)), ((10, 11), (0, 153, 153)), ((11, 24), (0, 153, 153)),
    ((11, 22), (0, 153, 153)), ((22, 23), (0, 153, 153)),
    ((8, 12), (0, 102, 153)), ((12, 13), (0, 51, 153)), ((13, 14), (0, 0, 153)), ((14, 21), (0, 0, 153)),
    ((14, 19), (0, 0, 153)), ((19, 20), (0, 0, 153)),
)
# (finger joints from the wrist, RGB colour)
HAND_FINGERS: tuple[tuple[tuple[int, ...], tuple[int, int, int]], ...] = (
    ((0, 1, 2, 3, 4), (204, 0, 0)), ((0, 5, 6, 7, 8), (163, 204, 0)), ((0, 9, 10, 11, 12), (0, 204, 82)),
    ((0, 13, 14, 15, 16), (0, 82, 204)), ((0, 17, 18, 19, 20), (163, 0, 204)),
)
# the 70-point face's parts, each a list of polylines (the jaw is not drawn)
FACE_POLYLINES: tuple[tuple[tuple[int, ...], ...], ...] = (
    (tuple(range(17, 22)),), (tuple(range(22, 27)),), (tuple(range(27, 31)), tuple(range(31, 36))),
    ((36, 37, 38, 39), (39, 40, 41, 36)), ((42, 43, 44, 45), (45, 46, 47, 42)),
    (tuple(range(48, 55)), (54, 55, 56, 57, 58, 59, 48)),
)
_COUNTS = {"pose_keypoints_2d": 25, "face_keypoints_2d": 70, "hand_left_keypoints_2d": 21,
           "hand_right_keypoints_2d": 21}


def _valid_points(points: np.ndarray, groups: Sequence[Sequence[int]] | None, threshold: float) -> np.ndarray:
    """N×2: coordinates of the points that count (per point, or all of a group), (0, 0) for the rest."""
    out = np.zeros((len(points), 2))
    if groups is None:
        keep = points[:, 2] > threshold
        out[keep] = points[keep, :2]
        return out
    for group in groups:
        if (points[list(group), 2] > threshold).all():
            out[list(group)] = points[list(group), :2]
    return out


def _bone(canvas: np.ndarray, points: np.ndarray, joints: Sequence[int], bw: int, colour: Sequence[int]) -> None:
    xs, ys = points[list(joints), 0], points[list(joints), 1]
    if 0 in xs:
        return
    curve_x, curve_y = fit_curve(xs, ys)
    stamp_curve(canvas, curve_x, curve_y, bw=bw, colour=colour, end_points=True)


def draw_person(shape: tuple[int, int], person: Mapping[str, np.ndarray]) -> np.ndarray:
    """One person's H×W×3 canvas from its keypoint arrays (N×3: x, y, confidence)."""
    canvas = np.zeros((*shape, 3), np.uint8)
    pose = _valid_points(person["pose_keypoints_2d"], None, 0.01)
    for joints, colour in POSE_LIMBS:
        _bone(canvas, pose, joints, 3, colour)
    fingers = [finger for finger, _ in HAND_FINGERS]
    for key in ("hand_left_keypoints_2d", "hand_right_keypoints_2d"):
        hand = _valid_points(person[key], fingers, 0.01)
        for finger, colour in HAND_FINGERS:
            for k in range(len(finger) - 1):
                _bone(canvas, hand, finger[k:k + 2], 1, colour)
    face = _valid_points(person["face_keypoints_2d"], [e for part in FACE_POLYLINES for e in part], 0.1)
    for part in FACE_POLYLINES:
        for polyline in part:
            for k in range(max(1, len(polyline) - 1)):
                _bone(canvas, face, polyline[k:k + 2], 1, (255, 255, 255))
    return canvas


def render_official(shape: tuple[int, int], people: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """H×W×3 uint8: every person drawn on its own canvas, the canvases added as uint8 (wrapping)."""
    picture = np.zeros((*shape, 3), np.uint8)
    for person in people:
        picture += draw_person(shape, person)
    return picture


def read_people(path: Path) -> list[dict[str, np.ndarray]]:
    """Every person of one OpenPose ``*_keypoints.json``: body, face and hands as N×3 arrays (absent parts
    are zeros); a malformed file is bad input naming it."""
    try:
        data = json.loads(Path(path).read_text())
        people = []
        for raw in data["people"]:
            person = {}
            for key, count in _COUNTS.items():
                values = np.asarray(raw.get(key) or np.zeros(count * 3), np.float64)
                if values.size != count * 3:
                    raise ValueError(f"{key} has {values.size} values, expected {count} keypoints × 3")
                person[key] = values.reshape(count, 3)
            people.append(person)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PreprocessInputError(f"{path}: not an OpenPose BODY_25 keypoints file ({exc})") from None
    return people


class OfficialOpenPoseImport(PerFrameFileImport):
    """openpose importer: ``<import_dir>/<clip>/*_keypoints.json``, one file per frame in name order."""

    pattern, kind, listing = "*_keypoints.json", "OpenPose", "OpenPose *_keypoints.json"
    name = "json"

    def __init__(self, clip_dir: Path, source_size: tuple[int, int] | None = None) -> None:
        super().__init__(clip_dir)
        self.source_size = source_size

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        sw, sh = self.source_size or (w, h)
        outputs = []
        for _ in frames:
            path = self.next_file()
            people = read_people(path)
            for person in people:
                body = person["pose_keypoints_2d"]
                seen = body[body[:, 2] > 0.01]
                if len(seen) and (seen[:, 0].max() > sw * 1.5 or seen[:, 1].max() > sh * 1.5):
                    raise PreprocessInputError(f"{path}: keypoints reach ({seen[:, 0].max():.0f}, {seen[:, 1].max():.0f}), "
                                               f"far outside the {sw}x{sh} frame: keypoints of another resolution? "
                                               f"(source_size=WxH)")
            picture = render_official((sh, sw), people)
            if (sw, sh) != (w, h):
                picture = np.asarray(Image.fromarray(picture).resize((w, h), Image.NEAREST))
            outputs.append({"payload": picture, "empty": not bool(picture.any())})
        return outputs
