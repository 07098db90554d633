"""Face sketches (vid2vid's face→video conditioning): facial-part polylines from mediapipe FaceMesh on a
blank canvas, plus Canny edges of everything outside the face region (the paper's edge maps).

Frames without a face are recorded as empty (``empty=True``, canvas holds only the background edges).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from models.preprocess.base import Frame, Output, check_frames
from models.preprocess.mediapipe_client import MediapipeBackend

STROKE = (255, 255, 255)


def draw_face_strokes(canvas: np.ndarray, landmarks: np.ndarray, parts: dict[str, list[list[int]]],
                      thickness: int = 1) -> np.ndarray:
    """Draw every connection of every facial part (landmarks in pixels, N×2) onto ``canvas``."""
    points = np.round(landmarks[:, :2]).astype(np.int32)
    for edges in parts.values():
        for a, b in edges:
            if a < len(points) and b < len(points):
                cv2.line(canvas, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]), STROKE,
                         thickness, cv2.LINE_8)
    return canvas


def face_region(shape: tuple[int, int], landmarks: np.ndarray, margin: int = 3) -> np.ndarray:
    """H×W bool: the convex hull of all face landmarks, grown by ``margin`` pixels."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(landmarks[:, :2]).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    if margin:
        mask = cv2.dilate(mask, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return mask.astype(bool)


def background_edges(frame: Frame, exclude: np.ndarray | None, low: int = 100, high: int = 200) -> np.ndarray:
    edges = cv2.Canny(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), low, high) > 0
    if exclude is not None:
        edges &= ~exclude
    return edges


def render_sketch(frame: Frame, faces: Sequence[np.ndarray], parts: dict[str, list[list[int]]],
                  edges: bool = True) -> np.ndarray:
    """H×W×3 uint8 sketch: part polylines for each face (pixel landmarks) + Canny edges outside the faces."""
    h, w = frame.shape[:2]
    canvas = np.zeros((h, w, 3), np.uint8)
    region = np.zeros((h, w), bool)
    for marks in faces:
        draw_face_strokes(canvas, marks, parts)
        region |= face_region((h, w), marks)
    if edges:
        canvas[background_edges(frame, region)] = STROKE
    return canvas


class MediapipeFaceSketch(MediapipeBackend):
    """sketch stage backend: FaceMesh (478 landmarks, refined eyes/lips) in the mediapipe side venv."""

    name = "mediapipe"
    task = "face"

    def __init__(self, max_faces: int = 1, min_confidence: float = 0.5, edges: bool = True) -> None:
        self.config = {"max_faces": max_faces, "min_confidence": min_confidence}
        self.edges = edges

    def landmarks(self, frame: Frame) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Face landmarks and FaceDetection boxes (x0, y0, x1, y1, score), both in pixels of ``frame``."""
        reply, _ = self.worker.process(frame)
        h, w = frame.shape[:2]
        scale = np.array([w, h, w], np.float32)
        faces = [np.asarray(face, np.float32) * scale for face in reply["faces"]]
        boxes = [np.asarray(b, np.float32) * np.array([w, h, w, h, 1], np.float32) for b in reply["detections"]]
        return faces, boxes

    @property
    def parts(self) -> dict[str, list[list[int]]]:
        return self.worker.info["parts"]

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        check_frames(frames)
        outputs = []
        for frame in frames:
            faces, _ = self.landmarks(frame)
            outputs.append({"payload": render_sketch(frame, faces, self.parts, self.edges),
                            "empty": not faces, "faces": len(faces)})
        return outputs
