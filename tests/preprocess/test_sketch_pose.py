"""Face sketches and pose maps with the real bundled mediapipe models (side venv), on a real face clip,
and the OpenPose BODY_25 importer."""

import json

import numpy as np
import pytest

from storage.sample_videos import carphone_path
from models.preprocess.base import PreprocessInputError
from models.preprocess.mediapipe_client import MediapipeUnavailableError
from models.preprocess.pose import BODY25_LIMBS, LIMB_COLOURS, MediapipePose, OpenPoseImport
from models.preprocess.run import run_frames
from models.preprocess.sketch import MediapipeFaceSketch, render_sketch
from storage.video import FramePolicy, VideoSource, decode


@pytest.fixture(scope="module")
def face_frames():
    frames = list(decode(VideoSource("carphone", carphone_path()), FramePolicy()))
    return [frames[i] for i in (0, 30, 60)]


def test_face_sketch_strokes_lie_inside_the_independently_detected_face_box(face_frames):
    with MediapipeFaceSketch() as sketcher:
        for frame in face_frames:
            faces, boxes = sketcher.landmarks(frame)
            assert len(faces) == 1 and faces[0].shape == (478, 3) and len(boxes) >= 1
            strokes = render_sketch(frame, faces, sketcher.parts, edges=False).max(2) > 0
            ys, xs = np.nonzero(strokes)
            x0, y0, x1, y1, _ = boxes[0]  # BlazeFace detection: a different model than FaceMesh
            bw, bh = x1 - x0, y1 - y0
            inside = (xs >= x0 - 0.15 * bw) & (xs <= x1 + 0.15 * bw) & (ys >= y0 - 0.35 * bh) & (ys <= y1 + 0.15 * bh)
            assert strokes.sum() > 150 and inside.mean() > 0.97, (strokes.sum(), inside.mean())
            # the strokes span the face: eyes to mouth fill most of the detected box
            assert (xs.max() - xs.min()) > 0.6 * bw and (ys.max() - ys.min()) > 0.6 * bh
        full = sketcher([face_frames[0]])[0]
        assert not full["empty"] and full["payload"].shape == face_frames[0].shape
        assert full["payload"].max(2).astype(bool).sum() > strokes.sum()  # + Canny edges of the background


def test_frames_without_a_face_or_person_are_empty_not_errors():
    blank = [np.full((96, 128, 3), 90, np.uint8)] * 2
    out = list(run_frames(MediapipeFaceSketch(), blank))
    assert [o["empty"] for o in out] == [True, True] and not out[0]["payload"].any()
    poses = list(run_frames(MediapipePose(), blank))
    assert [o["empty"] for o in poses] == [True, True]
    assert not poses[0]["payload"].any() and not poses[0]["person_mask"].any()


def test_missing_mediapipe_venv_is_a_clear_setup_error(monkeypatch, tmp_path):
    monkeypatch.setenv("VID2VID_MEDIAPIPE_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(MediapipeUnavailableError, match="make mediapipe-venv"):
        list(run_frames(MediapipeFaceSketch(), [np.zeros((8, 8, 3), np.uint8)]))


def _person(shift=0.0):
    joints = np.zeros((25, 3), np.float32)
    joints[1] = (50 + shift, 20, 0.9)  # neck
    joints[8] = (50 + shift, 60, 0.8)  # mid hip
    joints[2] = (35 + shift, 22, 0.9)  # right shoulder
    joints[3] = (30 + shift, 40, 0.0)  # right elbow: not detected
    return joints


def test_openpose_import_draws_each_limb_in_its_fixed_colour(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, people in enumerate([[_person()], []]):
        (clip / f"clip_{i:012d}_keypoints.json").write_text(json.dumps(
            {"version": 1.3, "people": [{"pose_keypoints_2d": p.flatten().tolist()} for p in people]}))
    importer = OpenPoseImport(clip)
    importer.check_count(2)
    out = importer([np.zeros((80, 100, 3), np.uint8)] * 2)
    limbs = out[0]["payload"]
    assert tuple(limbs[40, 50]) == LIMB_COLOURS[BODY25_LIMBS.index((1, 8))]  # neck → mid hip
    assert tuple(limbs[21, 42]) == LIMB_COLOURS[BODY25_LIMBS.index((1, 2))]  # neck → right shoulder
    assert not limbs[31, 32].any()  # the undetected elbow draws nothing
    assert out[0]["person_mask"][40, 50] == 1 and out[0]["person_mask"][70, 5] == 0
    assert not out[0]["empty"] and out[1]["empty"] and not out[1]["payload"].any()
    with pytest.raises(PreprocessInputError, match="3 frames"):
        importer.check_count(3)


def test_openpose_import_refuses_malformed_and_foreign_keypoints(tmp_path):
    clip = tmp_path / "clip"
    clip.mkdir()
    (clip / "a_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 0.5] * 18}]}))
    with pytest.raises(PreprocessInputError, match="BODY_25"):
        OpenPoseImport(clip)([np.zeros((80, 100, 3), np.uint8)])
    (clip / "a_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": (_person() * [10, 10, 1]).flatten().tolist()}]}))
    with pytest.raises(PreprocessInputError, match="another resolution"):
        OpenPoseImport(clip)([np.zeros((80, 100, 3), np.uint8)])
    with pytest.raises(PreprocessInputError, match="no OpenPose"):
        OpenPoseImport(tmp_path / "missing")
