"""Compare our builders of the released models' encodings with NVIDIA/vid2vid's own loader code, bit by bit.

    python scripts/check_official_encodings.py --vid2vid /path/to/NVIDIA/vid2vid   # a checkout you provide

Nothing of NVIDIA's code is in this repository (CC BY-NC-SA): this imports it from your checkout. Its
``interpPoints`` passes a float sample count to ``np.linspace``, which old numpy truncated and numpy >= 1.18
refuses; the comparison restores the truncation for its run. Cases: the face encoding (15 channels) of the
real face clip's frames with mediapipe landmarks mapped onto the 68 (when the mediapipe side venv exists) and of
noise frames with jittered landmarks; the OpenPose rendering of random multi-person keypoint files. Prints the
largest difference per case and exits 1 when any differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vid2vid", required=True, type=Path, help="a checkout of NVIDIA/vid2vid")
    args = parser.parse_args()
    linspace = np.linspace
    np.linspace = lambda a, b, n=50, **kw: linspace(a, b, int(n), **kw)  # old numpy's float-count truncation
    sys.path.insert(0, str(args.vid2vid))
    import torchvision.transforms as T
    from data import keypoint2img  # NVIDIA/vid2vid, from the given checkout
    from data.face_dataset import FaceDataset

    from models.preprocess.face15 import face15_encoding, mediapipe_to_ibug68
    from models.preprocess.openpose_official import read_people, render_official

    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp(prefix="official-encodings-"))
    worst = 0

    def face_case(frame: np.ndarray, points: np.ndarray, tag: str) -> None:
        nonlocal worst
        path = tmp / f"{tag}.txt"
        np.savetxt(path, points, fmt="%d", delimiter=",")  # as the official keypoints/*.txt
        dataset = FaceDataset()
        dataset.opt = types.SimpleNamespace(no_dist_map=False, no_canny_edge=False, isTrain=False,
                                            random_scale_points=False)
        h, w = frame.shape[:2]
        dataset.min_x, dataset.max_x, dataset.min_y, dataset.max_y = 0, w, 0, h  # no crop: compare the encoding
        try:
            theirs, _ = dataset.get_face_image(str(path), T.ToTensor(), T.ToTensor(), (w, h), Image.fromarray(frame))
        except RuntimeError as exc:  # scipy's curve_fit gave up: the official loader has no output for these points
            print(f"face15 {tag}: the official code raises ({str(exc).splitlines()[0][:60]}...): not compared")
            return
        ours = face15_encoding(frame, np.loadtxt(path, delimiter=",")).transpose(2, 0, 1).astype(int)
        diff = int(np.abs(np.round(theirs.numpy() * 255).astype(int) - ours).max())  # in uint8 steps
        worst = max(worst, diff)
        print(f"face15 {tag}: max |difference| {diff} (of 255)")

    meshes = []
    try:
        from storage.sample_videos import carphone_path
        from models.preprocess.mediapipe_client import MediapipeWorker
        from storage.video import FramePolicy, VideoSource, decode

        frames = list(decode(VideoSource("carphone", carphone_path()), FramePolicy()))
        with MediapipeWorker("face", max_faces=1, min_confidence=0.5) as worker:
            for k in (0, 40, 80):
                h, w = frames[k].shape[:2]
                mesh = np.asarray(worker.process(frames[k])[0]["faces"][0])[:, :2]
                meshes.append(mesh)
                face_case(frames[k], np.round(mediapipe_to_ibug68(mesh * [w, h])).astype(int), f"carphone{k}")
    except Exception as exc:  # noqa: BLE001 - the mediapipe side venv is optional here
        print(f"face15 on the real clip skipped: {exc}")
    base = mediapipe_to_ibug68(meshes[0]) if meshes else None
    for k in range(3):
        frame = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
        if base is None:
            t = np.linspace(np.pi, 0, 68)
            points = np.stack([128 + 80 * np.cos(t), 120 + 90 * np.sin(t)], 1)
        else:
            points = base * 256
        face_case(frame, np.round(points + rng.integers(-3, 4, points.shape)).astype(int), f"noise{k}")

    def keypoints(n: int, cx: float, cy: float, spread: float, drop: float) -> list[float]:
        xy = np.stack([cx + rng.normal(0, spread, n), cy + rng.normal(0, spread, n)], 1)
        confidence = rng.uniform(0.05, 1, n)
        confidence[rng.random(n) < drop] = 0
        return np.concatenate([xy, confidence[:, None]], 1).reshape(-1).tolist()

    for k in range(6):
        people = []
        for _ in range(1 + k % 3):
            cx, cy, s = rng.uniform(60, 260), rng.uniform(80, 400), rng.uniform(0.5, 1.5)
            people.append({"pose_keypoints_2d": keypoints(25, cx, cy, 60 * s, 0.1),
                           "face_keypoints_2d": keypoints(70, cx, cy, 10 * s, 0.05),
                           "hand_left_keypoints_2d": keypoints(21, cx, cy, 12 * s, 0.05),
                           "hand_right_keypoints_2d": keypoints(21, cx, cy, 12 * s, 0.05)})
        path = tmp / f"p{k}_keypoints.json"
        path.write_text(json.dumps({"people": people}))
        theirs = keypoint2img.read_keypoints(str(path), (320, 480), 0, False, False)
        ours = render_official((480, 320), read_people(path))
        diff = int(np.abs(theirs.astype(int) - ours.astype(int)).max())
        worst = max(worst, diff)
        print(f"openpose p{k} ({len(people)} people, {int((theirs.max(2) > 0).sum())} pixels drawn): "
              f"max |difference| {diff}")
    print("identical" if worst == 0 else f"DIFFERENT (largest difference {worst})")
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
