"""Runs INSIDE the mediapipe side venv (.venv-mediapipe, mediapipe 0.10.14): never imported by the pipeline.

Why a separate process: mediapipe 0.10.x (the line that bundles its face/pose models and runs offline)
needs protobuf<5, Ray needs protobuf>=5.26, so they cannot share a venv (ENVIRONMENT.md).

Protocol on stdin/stdout (binary): the parent sends one JSON line ``{"task": "face"|"pose", ...}``; the
worker answers one JSON line (``ready`` + the face-part connection lists). Then per frame the parent
sends a JSON line ``{"h": H, "w": W}`` followed by H*W*3 RGB bytes, and the worker answers one JSON line
with normalized landmarks; for pose, when ``mask_bytes`` > 0 the H*W uint8 person mask follows.
``{"quit": true}`` ends the session. Anything mediapipe prints goes to stderr, never into the protocol.
"""

import json
import os
import sys

import numpy as np


def _protocol_stream():
    """Keep the real stdout for the protocol; point fd 1 at stderr so native log lines cannot corrupt it."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return out


def _send(out, message, payload=b""):
    out.write(json.dumps(message).encode() + b"\n")
    if payload:
        out.write(payload)
    out.flush()


def _upscaled(image, min_side):
    import cv2

    h, w = image.shape[:2]
    scale = min_side / min(h, w)
    if scale <= 1:
        return image
    return cv2.resize(image, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_CUBIC)


def main():
    out = _protocol_stream()
    inp = sys.stdin.buffer
    config = json.loads(inp.readline())
    import mediapipe as mp

    task = config["task"]
    min_side = int(config.get("min_side", 480))  # small clips (e.g. 176x144) are upscaled before detection
    if task == "face":
        fm = mp.solutions.face_mesh
        mesh = fm.FaceMesh(static_image_mode=bool(config.get("static", False)),
                           max_num_faces=int(config.get("max_faces", 1)), refine_landmarks=True,
                           min_detection_confidence=float(config.get("min_confidence", 0.5)))
        detector = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
        parts = {name[len("FACEMESH_"):].lower(): sorted([list(e) for e in getattr(fm, name)])
                 for name in ("FACEMESH_FACE_OVAL", "FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYEBROW",
                              "FACEMESH_RIGHT_EYEBROW", "FACEMESH_LIPS", "FACEMESH_NOSE", "FACEMESH_IRISES")}
        _send(out, {"ready": True, "mediapipe": mp.__version__, "parts": parts})
    elif task == "pose":
        # model_complexity=1 is the only pose model bundled in the wheel (0 and 2 try to download)
        pose = mp.solutions.pose.Pose(static_image_mode=bool(config.get("static", False)), model_complexity=1,
                                      enable_segmentation=True,
                                      min_detection_confidence=float(config.get("min_confidence", 0.5)))
        _send(out, {"ready": True, "mediapipe": mp.__version__})
    else:
        _send(out, {"error": f"unknown task {task!r}"})
        return 2

    while True:
        line = inp.readline()
        if not line:
            return 0
        header = json.loads(line)
        if header.get("quit"):
            return 0
        h, w = int(header["h"]), int(header["w"])
        data = inp.read(h * w * 3)
        if len(data) != h * w * 3:
            _send(out, {"error": f"short frame: {len(data)} of {h * w * 3} bytes"})
            return 3
        image = np.ascontiguousarray(_upscaled(np.frombuffer(data, np.uint8).reshape(h, w, 3), min_side))
        if task == "face":
            result = mesh.process(image)
            faces = [[[p.x, p.y, p.z] for p in face.landmark] for face in (result.multi_face_landmarks or [])]
            found = detector.process(image)
            boxes = []
            for det in found.detections or []:
                box = det.location_data.relative_bounding_box
                boxes.append([box.xmin, box.ymin, box.xmin + box.width, box.ymin + box.height, det.score[0]])
            _send(out, {"faces": faces, "detections": boxes})
        else:
            result = pose.process(image)
            if result.pose_landmarks is None:
                _send(out, {"landmarks": None, "mask_bytes": 0})
                continue
            marks = [[p.x, p.y, p.z, p.visibility] for p in result.pose_landmarks.landmark]
            mask = result.segmentation_mask
            payload = b""
            if mask is not None:
                import cv2

                mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
                payload = (mask > 0.5).astype(np.uint8).tobytes()
            _send(out, {"landmarks": marks, "mask_bytes": len(payload)}, payload)


if __name__ == "__main__":
    sys.exit(main())
