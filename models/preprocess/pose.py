"""Pose maps (vid2vid's pose→video conditioning): a BODY_25 skeleton drawn with a fixed colour per limb,
plus a person mask. Two sources share the renderer: mediapipe Pose (33 landmarks mapped onto BODY_25)
and OpenPose BODY_25 JSON files (``*_keypoints.json``), so OpenPose/DensePose users can bring their own.

Frames with no person are recorded as empty (``empty=True``, black map, empty mask).
"""

from __future__ import annotations

import colorsys
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models.preprocess.base import Frame, Output, PreprocessInputError, check_frames
from models.preprocess.mediapipe_client import MediapipeBackend

# OpenPose BODY_25 limbs (its render order)
BODY25_LIMBS = ((1, 8), (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (8, 9), (9, 10), (10, 11), (8, 12),
                (12, 13), (13, 14), (1, 0), (0, 15), (15, 17), (0, 16), (16, 18), (14, 19), (19, 20), (14, 21),
                (11, 22), (22, 23), (11, 24))
LIMB_COLOURS = tuple(tuple(int(255 * c) for c in colorsys.hsv_to_rgb(i / len(BODY25_LIMBS), 1.0, 1.0))
                     for i in range(len(BODY25_LIMBS)))
# BODY_25 joint -> mediapipe landmark(s) (two = their midpoint); small toes have no mediapipe counterpart
MEDIAPIPE_TO_BODY25: tuple[tuple[int, ...], ...] = (
    (0,), (11, 12), (12,), (14,), (16,), (11,), (13,), (15,), (23, 24), (24,), (26,), (28,), (23,), (25,), (27,),
    (5,), (2,), (8,), (7,), (31,), (), (29,), (32,), (), (30,))


def render_pose(shape: tuple[int, int], people: Sequence[np.ndarray], threshold: float = 0.1,
                thickness: int | None = None) -> np.ndarray:
    """H×W×3 limb map; each person is 25×3 (x, y in pixels, confidence)."""
    h, w = shape
    thickness = thickness or max(2, round(min(h, w) / 64))
    canvas = np.zeros((h, w, 3), np.uint8)
    for joints in people:
        for (a, b), colour in zip(BODY25_LIMBS, LIMB_COLOURS):
            if joints[a, 2] > threshold and joints[b, 2] > threshold:
                pa = tuple(int(round(v)) for v in joints[a, :2])
                pb = tuple(int(round(v)) for v in joints[b, :2])
                cv2.line(canvas, pa, pb, colour, thickness, cv2.LINE_8)
    return canvas


def mediapipe_to_body25(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """33×4 normalized mediapipe landmarks (x, y, z, visibility) → 25×3 BODY_25 (pixels, confidence)."""
    joints = np.zeros((25, 3), np.float32)
    for j, sources in enumerate(MEDIAPIPE_TO_BODY25):
        if sources:
            pts = landmarks[list(sources)]
            joints[j] = (pts[:, 0].mean() * width, pts[:, 1].mean() * height, pts[:, 3].min())
    return joints


def read_openpose_json(path: Path, shape: tuple[int, int]) -> list[np.ndarray]:
    """BODY_25 people from one OpenPose ``*_keypoints.json``; malformed files are bad input."""
    try:
        data = json.loads(Path(path).read_text())
        people = [np.asarray(p["pose_keypoints_2d"], np.float32).reshape(-1, 3) for p in data.get("people", [])]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PreprocessInputError(f"{path}: not an OpenPose keypoints file ({exc})") from None
    for person in people:
        if person.shape != (25, 3):
            raise PreprocessInputError(f"{path}: expected BODY_25 (25 keypoints), got {person.shape[0]}")
        h, w = shape
        visible = person[person[:, 2] > 0]
        if len(visible) and (visible[:, 0].max() > w * 1.5 or visible[:, 1].max() > h * 1.5):
            raise PreprocessInputError(f"{path}: keypoints reach ({visible[:, 0].max():.0f}, {visible[:, 1].max():.0f}), "
                                       f"far outside the {w}x{h} frame — keypoints of another resolution?")
    return people


class MediapipePose(MediapipeBackend):
    """pose stage backend: mediapipe Pose (model_complexity=1, the bundled model) + its segmentation mask."""

    name = "mediapipe"
    task = "pose"

    def __init__(self, min_confidence: float = 0.5, visibility: float = 0.5) -> None:
        self.config = {"min_confidence": min_confidence}
        self.visibility = visibility

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        outputs = []
        for frame in frames:
            reply, mask = self.worker.process(frame)
            people = [] if reply["landmarks"] is None else \
                [mediapipe_to_body25(np.asarray(reply["landmarks"], np.float32), w, h)]
            person_mask = mask if mask is not None else np.zeros((h, w), np.uint8)
            outputs.append({"payload": render_pose((h, w), people, self.visibility), "person_mask": person_mask,
                            "empty": not people})
        return outputs


class OpenPoseImport:
    """pose stage importer: ``<import_dir>/<clip>/*_keypoints.json``, one file per frame in name order.

    OpenPose gives no segmentation, so the person mask is the limb map's footprint, dilated.
    """

    name = "openpose"

    def __init__(self, clip_dir: Path, threshold: float = 0.1) -> None:
        self.files = sorted(Path(clip_dir).glob("*_keypoints.json")) if Path(clip_dir).is_dir() else []
        if not self.files:
            raise PreprocessInputError(f"no OpenPose *_keypoints.json files in {clip_dir}")
        self.threshold, self._next = threshold, 0

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        outputs = []
        for _ in frames:
            if self._next >= len(self.files):
                raise PreprocessInputError(f"only {len(self.files)} OpenPose files for a longer clip")
            people = read_openpose_json(self.files[self._next], (h, w))
            self._next += 1
            limbs = render_pose((h, w), people, self.threshold)
            mask = cv2.dilate((limbs.max(2) > 0).astype(np.uint8), np.ones((9, 9), np.uint8))
            empty = not any((p[:, 2] > self.threshold).any() for p in people)
            outputs.append({"payload": limbs, "person_mask": mask, "empty": empty})
        return outputs

    def check_count(self, n_frames: int) -> None:
        if len(self.files) != n_frames:
            raise PreprocessInputError(f"{len(self.files)} OpenPose files for a clip of {n_frames} frames")
