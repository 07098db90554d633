"""The released vid2vid models' input encodings: Cityscapes label ids (gtFine import), the 15-channel face
encoding, DensePose IUV and the official OpenPose rendering - hand-computed values on tiny inputs, and the
import doors through ``preprocess_clip`` on a Cityscapes-named clip ingested for real."""

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image
from pydantic import ValidationError

from models.preprocess import cityscapes
from models.preprocess.base import PreprocessInputError
from models.preprocess.clip import RunSettings, preprocess_clip
from models.preprocess.densepose import read_iuv
from models.preprocess.face15 import (FACE_EDGES, MEDIAPIPE_TO_IBUG68, face15_encoding, mediapipe_to_ibug68,
                                      part_labels, read_landmarks, with_upper_face)
from models.preprocess.mediapipe_client import mediapipe_python
from models.preprocess.official_drawing import fit_curve, stamp_curve
from models.preprocess.openpose_official import draw_person, read_people, render_official
from models.preprocess.registry import BackendSettings
from models.vid2vid.batch import encode_input
from models.vid2vid.config import ModelConfig, load_model_config, load_official
from models.vid2vid.official_inputs import official_inputs
from storage.clip_reader import iter_clip_frames
from storage.codecs import decode_planes, encode_planes
from storage.dataset import frames_tensor, require_label_spaces
from storage.errors import ShardError, StorageError
from storage.ingest import IngestConfig, clip_ids, ingest_clip
from storage.layout import DatasetLayout
from storage.manifest import merge_records
from storage.shards import ShardReader, frame_size
from storage.stages import write_stage
from storage.video import discover

CLIP = "aachen_000001"
FRAMES = (17, 18, 19)  # Cityscapes frame numbers of the clip
W, H = 32, 16


# ---------------------------------------------------------------------------------------------- Cityscapes
def test_cityscapes_table_is_cityscapesscripts_label_ids():
    assert cityscapes.NUM_LABEL_ID_CLASSES == 35 and cityscapes.MAX_LABEL_ID == 33
    assert cityscapes.CAR_LABEL_ID == 26 and cityscapes.LABEL_ID_NAMES[26] == "car"
    assert cityscapes.LABEL_ID_NAMES[7] == "road" and cityscapes.LABEL_ID_NAMES[0] == "unlabeled"
    assert cityscapes.THING_LABEL_IDS == (24, 25, 26, 27, 28, 29, 30, 31, 32, 33)
    assert cityscapes.TRAIN_TO_LABEL_ID[0] == 7 and cityscapes.TRAIN_TO_LABEL_ID[13] == 26
    assert cityscapes.TRAIN_TO_LABEL_ID[18] == 33 and len(cityscapes.TRAIN_TO_LABEL_ID) == 19
    # a Cityscapes network's train ids as label ids (mmseg:label_space=cityscapes_label_ids); ignore -> unlabeled
    np.testing.assert_array_equal(cityscapes.train_to_label_ids(np.array([[0, 13, 255], [10, 11, 18]], np.uint8)),
                                  [[7, 26, 0], [23, 24, 33]])
    mmseg = BackendSettings(backend="mmseg", label_space="cityscapes_label_ids")
    assert mmseg.fingerprint_config()["label_space"] == "cityscapes_label_ids"
    assert "label_space" not in BackendSettings(backend="mmseg").fingerprint_config()  # earlier shards stay current
    with pytest.raises(ValidationError, match="backend 'torchvision' has no option 'label_space'"):
        BackendSettings(backend="torchvision", label_space="cityscapes_label_ids")


def _cityscapes_clip(root: Path, tmp: Path) -> DatasetLayout:
    """A leftImg8bit_sequence folder of 3 frames, ingested the real way (clip id = <city>_<seq>)."""
    folder = tmp / "leftImg8bit_sequence" / "train" / "aachen"
    folder.mkdir(parents=True)
    for k, n in enumerate(FRAMES):
        frame = np.full((H, W, 3), 40 * k, np.uint8)
        Image.fromarray(frame).save(folder / f"{CLIP}_{n:06d}_leftImg8bit.png")
    sources = discover(folder)
    assert clip_ids(sources) == [CLIP]
    layout = DatasetLayout(root, "city")
    merge_records(layout, [ingest_clip(layout, sources[0], CLIP, IngestConfig(val_fraction=0.0))])
    return layout


def _gtfine(tmp: Path, skip: int | None = None, scale: int = 2) -> Path:
    """gtFine-style label and instance PNGs at ``scale`` x the frames: left half road (7), right half a car
    (26); frame k moves the car's left edge by k pixels."""
    gt = tmp / "gtFine" / "train" / "aachen"
    gt.mkdir(parents=True)
    for k, n in enumerate(FRAMES):
        if n == skip:
            continue
        label = np.full((H, W), 7, np.uint8)
        label[:, W // 2 + k:] = 26
        instance = label.astype(np.uint16)
        instance[:, W // 2 + k:] = 26001
        big = (H * scale, W * scale)
        label = cv2.resize(label, big[::-1], interpolation=cv2.INTER_NEAREST)
        instance = cv2.resize(instance, big[::-1], interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(gt / f"{CLIP}_{n:06d}_gtFine_labelIds.png"), label)
        cv2.imwrite(str(gt / f"{CLIP}_{n:06d}_gtFine_instanceIds.png"), instance)  # 16-bit, as gtFine
        cv2.imwrite(str(gt / f"{CLIP}_{n:06d}_gtFine_color.png"), np.zeros((*big, 3), np.uint8))  # ignored
    return tmp / "gtFine"


def _run(layout, stage, backend, **options):
    return preprocess_clip(layout, CLIP, stage, BackendSettings(backend=backend, **options), RunSettings())


def test_gtfine_label_and_instance_ids_are_imported_by_frame_name(tmp_path, data_root):
    layout = _cityscapes_clip(data_root, tmp_path)
    gt = _gtfine(tmp_path)
    semantic = _run(layout, "semantic", "cityscapes", import_dir=str(gt))
    instance = _run(layout, "instance", "cityscapes", import_dir=str(gt))
    assert (semantic.status, semantic.frames, instance.status, instance.frames) == ("written", 3, "written", 3)
    labels = ShardReader(layout.shard_path("semantic", CLIP))
    assert labels.meta.extra["label_space"] == "cityscapes_label_ids"
    for k, frame in enumerate(labels.read()):
        expected = np.full((H, W), 7, np.uint8)
        expected[:, W // 2 + k:] = 26  # resized from 2x by nearest neighbour: exactly the drawn map
        np.testing.assert_array_equal(frame["payload"], expected)
    inst = ShardReader(layout.shard_path("instance", CLIP)).read()
    assert inst[2]["payload"].dtype == np.uint16 and set(np.unique(inst[2]["payload"])) == {7, 26001}
    assert not inst[0]["empty"]
    # the dataset backend validates label-id shards by their recorded space, not as train ids
    assert _run(layout, "semantic", "dataset").status == "validated"
    # a second run finds the shard current; a changed import file rebuilds it
    assert _run(layout, "semantic", "cityscapes", import_dir=str(gt)).status == "skipped"
    path = next(gt.rglob(f"{CLIP}_000018_gtFine_labelIds.png"))
    cv2.imwrite(str(path), np.full((2 * H, 2 * W), 11, np.uint8))
    assert _run(layout, "semantic", "cityscapes", import_dir=str(gt)).status == "written"
    assert set(np.unique(ShardReader(layout.shard_path("semantic", CLIP)).read(1, 2)[0]["payload"])) == {11}


def test_label_id_maps_named_otherwise_come_in_with_a_suffix(tmp_path, data_root):
    layout = _cityscapes_clip(data_root, tmp_path)
    folder = tmp_path / "test_A" / "aachen"  # e.g. per-frame network predictions named like the frames
    folder.mkdir(parents=True)
    for k, n in enumerate(FRAMES):
        cv2.imwrite(str(folder / f"{CLIP}_{n:06d}_leftImg8bit.png"), np.full((H, W), 21 + k, np.uint8))
    assert _run(layout, "semantic", "cityscapes", import_dir=str(tmp_path / "test_A")).status == "quarantined"
    out = _run(layout, "semantic", "cityscapes", import_dir=str(tmp_path / "test_A"), suffix="leftImg8bit.png")
    assert out.status == "written", out.error
    assert [int(f["payload"][0, 0]) for f in ShardReader(layout.shard_path("semantic", CLIP)).read()] == [21, 22, 23]


def test_a_missing_or_wrong_gtfine_file_quarantines_the_clip_naming_clip_and_file(tmp_path, data_root):
    layout = _cityscapes_clip(data_root, tmp_path)
    gt = _gtfine(tmp_path, skip=18)
    out = _run(layout, "semantic", "cityscapes", import_dir=str(gt))
    assert out.status == "quarantined"
    assert f"clip {CLIP}" in out.error and "frame 000018" in out.error and f"{CLIP}_000018_*labelIds.png" in out.error
    assert not layout.shard_path("semantic", CLIP).exists()
    nothing = _run(layout, "semantic", "cityscapes", import_dir=str(tmp_path / "nowhere"))
    assert nothing.status == "quarantined" and "no *labelIds.png files" in nothing.error
    # train ids where label ids belong are still valid label ids; ids above 33 are not
    path = next(gt.rglob(f"{CLIP}_000017_gtFine_labelIds.png"))
    cv2.imwrite(str(path), np.full((2 * H, 2 * W), 200, np.uint8))
    cv2.imwrite(str(path.with_name(f"{CLIP}_000018_gtFine_labelIds.png")), np.full((2 * H, 2 * W), 7, np.uint8))
    bad = _run(layout, "semantic", "cityscapes", import_dir=str(gt))
    assert bad.status == "quarantined" and "[200]" in bad.error and "label ids 0..33" in bad.error
    # another aspect ratio than the frames: refused, naming the file
    cv2.imwrite(str(path), np.full((H, 3 * W), 7, np.uint8))
    aspect = _run(layout, "semantic", "cityscapes", import_dir=str(gt))
    assert aspect.status == "quarantined" and "another aspect ratio" in aspect.error and path.name in aspect.error


def test_models_are_refused_label_ids_of_the_other_space(tmp_path, data_root):
    layout = _cityscapes_clip(data_root, tmp_path)
    _run(layout, "semantic", "cityscapes", import_dir=str(_gtfine(tmp_path)))
    street = load_model_config("tiny")  # train ids
    with pytest.raises(StorageError, match="reads 'semantic' as cityscapes_train_ids, but dataset 'city' holds "
                                           "cityscapes_label_ids there for 1 clip"):
        require_label_spaces(layout, street.input.label_spaces, "train", "tiny reads")
    official = load_model_config("label2city_2048")
    require_label_spaces(layout, {"semantic": official.input.label_spaces["semantic"]}, "train")  # passes
    other = DatasetLayout(data_root, "synthetic")  # train-id shards (no recorded space: the default)
    merge_records(other, [_train_id_clip(other)])
    with pytest.raises(StorageError, match="as cityscapes_label_ids, but dataset 'synthetic' holds cityscapes_train_ids"):
        require_label_spaces(other, official.input.label_spaces, "train", "label2city_2048 reads")


def _train_id_clip(layout):
    from storage.synthetic import write_synthetic_clip

    return write_synthetic_clip(layout, "s0", 1, 64, 32, 3)


def test_label_spaces_are_declared_with_their_class_counts():
    label2city = load_model_config("label2city_2048")
    labels = label2city.input.labels
    assert (labels.num_classes, labels.label_space, label2city.generator.foreground_classes) == \
        (35, "cityscapes_label_ids", (26,))
    assert load_model_config("label2city_1024_g1").input.label_spaces == label2city.input.label_spaces
    assert load_model_config("street").input.label_spaces == {"semantic": "cityscapes_train_ids",
                                                              "instance": "cityscapes_train_ids"}
    with pytest.raises(ValidationError, match="cityscapes_label_ids are 35 classes, not num_classes=19"):
        ModelConfig.model_validate({"input": {"sources": [
            {"name": "labels", "stage": "semantic", "encoding": "one_hot", "num_classes": 19,
             "label_space": "cityscapes_label_ids"}]}})


# ------------------------------------------------------------------------------------- drawing primitives
def test_curves_are_sampled_and_truncated_as_the_official_drawing():
    xs, ys = fit_curve([0, 4], [0.5, 2.5])  # y = x/2 + 1/2 at int(4) = 4 samples 0, 4/3, 8/3, 4
    np.testing.assert_array_equal(xs, [0, 1, 2, 4])
    np.testing.assert_array_equal(ys, [0, 1, 1, 2])
    xs, ys = fit_curve([10.5, 10.5], [2.5, 7.5])  # steeper than diagonal: x as a function of y
    np.testing.assert_array_equal(ys, [2, 3, 5, 6, 7])  # 2.5, 3.75, 5, 6.25, 7.5
    np.testing.assert_array_equal(xs, [10] * 5)
    assert fit_curve([0, 0.5, 3], [0, 2, 0]) == (None, None)  # a parabola bent more than |a| = 1 (-1.6): not drawn
    assert fit_curve([3, 3.5], [1, 1.2])[0].size == 0  # int(0.5) = 0 samples
    # scipy's curve_fit gives up on these (the official loader would stop): numpy's least squares stands in
    xs, ys = fit_curve([126, 126, 246], [123, 139, 245])
    assert len(xs) == 120 and xs[0] == 126 and abs(int(ys[-1]) - 245) <= 2


def test_stamps_are_blocks_up_left_and_colours_average_over_drawn_pixels():
    grey = np.zeros((6, 6), np.uint8)
    stamp_curve(grey, np.array([3]), np.array([3]))
    assert list(zip(*np.nonzero(grey))) == [(2, 2), (2, 3), (3, 2), (3, 3)]
    rgb = np.zeros((6, 6, 3), np.uint8)
    stamp_curve(rgb, np.array([3]), np.array([3]), colour=(10, 20, 30))
    stamp_curve(rgb, np.array([3, 5]), np.array([3, 3]), colour=(30, 40, 50))
    # each offset paints one pixel per sample: (2, 2) and (2, 4) together; one was drawn, so both are averaged
    assert rgb[2, 2].tolist() == [20, 30, 40] and rgb[2, 4].tolist() == [15, 20, 25]  # the black one too
    assert rgb[1, 1].tolist() == [0, 0, 0]
    disc = np.zeros((20, 20), np.uint8)
    stamp_curve(disc, np.array([10]), np.array([10]), bw=1, end_points=True)
    assert disc.sum() // 255 == 9  # the 2x2 block lies within the disc: i*i + j*j < 4 for i, j in -2..1


# --------------------------------------------------------------------------------------------------- face
def _face(h=64, w=64):
    """68 landmarks: a jaw arc, flat brows at y = 20.5, eyes, nose and lips (pixels)."""
    points = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    points[:17] = np.stack([32 + 24 * np.cos(t), 30 + 26 * np.sin(t)], 1)
    points[17:22] = np.stack([np.arange(10, 35, 5), np.full(5, 20.5)], 1)
    points[22:27] = points[17:22] + [22, 0]
    points[27:31] = np.stack([np.full(4, 32.5), np.arange(24, 40, 4) + 0.5], 1)
    points[31:36] = np.stack([np.arange(28, 38, 2) + 0.5, np.full(5, 42.5)], 1)
    for start, cx in ((36, 20), (42, 44)):
        points[start:start + 6] = [[cx - 5, 26], [cx - 2, 24], [cx + 2, 24], [cx + 5, 26], [cx + 2, 28], [cx - 2, 28]]
    angles = np.linspace(np.pi, -np.pi, 13)[:12]
    points[48:60] = np.stack([32 + 10 * np.cos(angles), 50 - 4 * np.sin(angles)], 1)
    inner = np.linspace(np.pi, -np.pi, 9)[:8]
    points[60:68] = np.stack([32 + 6 * np.cos(inner), 50 - 2 * np.sin(inner)], 1)
    return points


def test_upper_face_mirrors_the_jaw_at_two_thirds():
    points = np.zeros((68, 2))
    points[:17, 0] = np.arange(17)
    points[:17, 1] = 40
    points[0, 1], points[16, 1], points[8, 1] = 20, 22, 52  # baseline y = 21
    upper = with_upper_face(points)
    assert upper.shape == (83, 2)
    # jaw point 8 (y 52) -> 21 + (21 - 52) * 2 // 3 = 21 - 21 (floor of -20.67) = 0; point 1 (y 40) -> 21 - 13 = 8
    assert upper[68 + 15 - 8, 1] == 0 and upper[68 + 15 - 1, 1] == 8  # reversed order
    assert upper[82, 0] == 1 and upper[68, 0] == 15


def test_face15_distance_maps_are_l1_distances_over_three_and_the_edge_map_adds_canny_outside_parts():
    points = _face()
    frame = np.zeros((64, 64, 3), np.uint8)
    enc = face15_encoding(frame, points, edges=np.zeros((64, 64), bool))
    assert enc.shape == (64, 64, 15) and enc.dtype == np.uint8 and len(FACE_EDGES) == 14
    brow = enc[..., 2]  # the right eyebrow, drawn at rows 19..20 over its columns
    assert brow[20, 15] == 0 and brow[19, 15] == 0
    assert brow[25, 15] == 5 // 3 and brow[50, 15] == 30 // 3 and brow[20, 50] == 20 // 3  # L1 to (20, 30)
    outside = part_labels(with_upper_face(points), (64, 64)) == 0
    polylines = enc[..., 0] == 255
    canny_all = face15_encoding(frame, points, edges=np.ones((64, 64), bool))[..., 0]
    assert (canny_all[outside & ~polylines] == 255).all() and (canny_all[~outside & ~polylines] == 0).all()
    assert (canny_all[outside & polylines] == 254).all() and (outside & polylines).any()  # uint8 wrap, as there
    none = face15_encoding(frame, None, edges=np.ones((64, 64), bool))
    assert (none[..., 0] == 255).all() and (none[..., 1:] == 255).all()


def test_face15_canny_is_scikit_image_on_pil_grey():
    pytest.importorskip("skimage", reason="scikit-image is a declared dependency; install it (pyproject.toml)")
    frame = np.zeros((64, 64, 3), np.uint8)
    frame[:, 40:] = (200, 100, 50)  # one vertical edge at x = 40, right of the face's parts there
    from skimage import feature

    enc = face15_encoding(frame, _face())[..., 0]
    edges = feature.canny(np.asarray(Image.fromarray(frame).convert("L")))
    np.testing.assert_array_equal(enc, face15_encoding(frame, _face(), edges=edges)[..., 0])
    assert edges[1:-1, 38:42].any(1).all()  # the image edge, on every row but the borders (Canny skips them)
    outside = part_labels(with_upper_face(_face()), (64, 64)) == 0
    polylines = face15_encoding(frame, _face(), edges=np.zeros((64, 64), bool))[..., 0] > 0
    assert (enc[1:8, 38:42] == 255).any(1).all()  # above the face: the Canny edge is in the map
    assert not (enc[~outside & ~polylines] > 0).any()  # inside the face's parts: no Canny edge


def test_landmark_files_are_68_comma_or_space_separated_points(tmp_path):
    path = tmp_path / "0001.txt"
    np.savetxt(path, _face().astype(int), fmt="%d", delimiter=",")  # the official keypoints/*.txt layout
    assert read_landmarks(path, (64, 64)).shape == (68, 2)
    np.savetxt(path, _face().astype(int) * 2, fmt="%d")
    np.testing.assert_array_equal(read_landmarks(path, (64, 64), (0.5, 0.5)), _face().astype(int))
    path.write_text("1,2\n3,4\n")
    with pytest.raises(PreprocessInputError, match="expected 68 landmarks"):
        read_landmarks(path, (64, 64))
    np.savetxt(path, _face() * 10, fmt="%d", delimiter=",")
    with pytest.raises(PreprocessInputError, match="another resolution"):
        read_landmarks(path, (64, 64))


def test_mediapipe_to_ibug68_table_picks_documented_points():
    assert len(MEDIAPIPE_TO_IBUG68) == 68 and len(set(MEDIAPIPE_TO_IBUG68)) == 68
    assert max(MEDIAPIPE_TO_IBUG68) < 468  # the 478-point mesh's irises are not used
    mesh = np.zeros((478, 3))
    mesh[:, 0] = np.arange(478)
    np.testing.assert_array_equal(mediapipe_to_ibug68(mesh)[:, 0], MEDIAPIPE_TO_IBUG68)
    assert MEDIAPIPE_TO_IBUG68[8] == 152 and MEDIAPIPE_TO_IBUG68[30] == 1 and MEDIAPIPE_TO_IBUG68[36] == 33
    with pytest.raises(ValueError, match="468 or 478"):
        mediapipe_to_ibug68(np.zeros((68, 2)))


def _mediapipe_available() -> bool:
    try:
        return mediapipe_python().is_file()
    except Exception:  # noqa: BLE001 - the side venv is optional for these tests
        return False


@pytest.mark.skipif(not _mediapipe_available(), reason="mediapipe side venv (.venv-mediapipe) not installed")
def test_the_table_follows_the_contour_rule_on_mediapipes_own_connection_sets():
    """Re-derive the 68 from mediapipe's FACEMESH_* sets: walk each contour between the named points and take
    the evenly spaced positions the table's comment states."""
    script = ("import json, mediapipe as mp; fm = mp.solutions.face_mesh; print(json.dumps({n: sorted(map(list, "
              "getattr(fm, 'FACEMESH_' + n))) for n in ('FACE_OVAL', 'LEFT_EYE', 'RIGHT_EYE', 'LEFT_EYEBROW', "
              "'RIGHT_EYEBROW', 'LIPS', 'NOSE')}))")
    sets = json.loads(subprocess.run([str(mediapipe_python()), "-c", script], capture_output=True, text=True,
                                     check=True).stdout)

    def shortest(graph, start, end):
        walks = [[start]]
        while walks:
            walk = walks.pop(0)
            if walk[-1] == end:
                return walk
            walks += [walk + [n] for n in graph[walk[-1]] if n not in walk]
        raise AssertionError(f"no path {start}->{end}")

    def path(name, start, end, via):
        """The contour from ``start`` to ``end`` through ``via`` (which side of a closed contour)."""
        graph = {}
        for a, b in sets[name]:
            graph.setdefault(a, []).append(b)
            graph.setdefault(b, []).append(a)
        return shortest(graph, start, via) + shortest(graph, via, end)[1:]

    def sample(walk, m):
        return [walk[round(k * (len(walk) - 1) / (m - 1))] for k in range(m)]

    jaw_r, jaw_l = path("FACE_OVAL", 127, 152, 172), path("FACE_OVAL", 356, 152, 397)
    derived = sample(jaw_r, 9) + sample(jaw_l, 9)[::-1][1:]
    derived += path("RIGHT_EYEBROW", 70, 107, 105) + path("LEFT_EYEBROW", 336, 300, 334)
    derived += sample(path("NOSE", 168, 1, 5), 4) + path("NOSE", 98, 327, 2)
    derived += sample(path("RIGHT_EYE", 33, 133, 159), 4) + sample(path("RIGHT_EYE", 133, 33, 145), 4)[1:3]
    derived += sample(path("LEFT_EYE", 362, 263, 386), 4) + sample(path("LEFT_EYE", 263, 362, 374), 4)[1:3]
    derived += sample(path("LIPS", 61, 291, 0), 7) + sample(path("LIPS", 291, 61, 17), 7)[1:6]
    derived += sample(path("LIPS", 78, 308, 13), 5) + sample(path("LIPS", 308, 78, 14), 5)[1:4]
    assert tuple(derived) == MEDIAPIPE_TO_IBUG68


# ---------------------------------------------------------------------------------------------- densepose
def test_iuv_is_read_as_the_official_loader_and_normalised_so_part_24_is_one(tmp_path):
    iuv = np.zeros((4, 6, 3), np.uint8)  # DensePose's array: I, U, V; written as BGR (I in blue)
    iuv[..., 0] = [[0, 6, 12, 18, 24, 3]] * 4
    iuv[..., 1], iuv[..., 2] = 255, 51
    cv2.imwrite(str(tmp_path / "f_IUV.png"), iuv)
    picture = read_iuv(tmp_path / "f_IUV.png", (4, 6))
    assert picture[0, :, 2].tolist() == [0, 6, 12, 18, 24, 3]  # (V, U, I) as PIL reads it as RGB
    assert picture[0, 0, :2].tolist() == [51, 255]
    spec = load_model_config("pose2body_1024p").input.sources[0]
    encoded = encode_input(spec, frames_tensor(picture[None]))
    np.testing.assert_allclose(encoded[0, 2, 0].numpy(), [-1, -0.5, 0, 0.5, 1, -0.75], atol=1e-6)
    np.testing.assert_allclose(encoded[0, :2, 0, 0].numpy(), [51 / 127.5 - 1, 1.0], atol=1e-6)
    assert read_iuv(tmp_path / "f_IUV.png", (8, 12))[::2, ::2].tolist() == picture.tolist()  # nearest
    iuv[0, 0, 0] = 25
    cv2.imwrite(str(tmp_path / "bad.png"), iuv)
    with pytest.raises(PreprocessInputError, match="not a DensePose IUV image"):
        read_iuv(tmp_path / "bad.png", (4, 6))


def test_face_edge_distance_is_read_in_zero_one():
    spec = load_model_config("edge2face_512").input.sources[0]
    planes = np.zeros((1, 2, 2, 15), np.uint8)
    planes[0, 0, 0, :] = 255
    planes[0, 1, 1, 3] = 51
    encoded = encode_input(spec, frames_tensor(planes))
    assert encoded.shape == (1, 15, 2, 2)
    np.testing.assert_allclose(encoded[0, :, 0, 0].numpy(), 1.0, atol=1e-6)
    assert abs(float(encoded[0, 3, 1, 1]) - 0.2) < 1e-6 and float(encoded[0, 0, 1, 1]) == 0.0


# ---------------------------------------------------------------------------------------------- openpose
def _person(joints=None, **parts):
    pose = np.zeros((25, 3))
    for j, (x, y) in (joints or {}).items():
        pose[j] = (x, y, 0.9)
    person = {"pose_keypoints_2d": pose.reshape(-1).tolist()}
    person.update(parts)
    return person


def test_openpose_limbs_are_drawn_as_the_official_loader(tmp_path):
    path = tmp_path / "f_000000000000_keypoints.json"
    json.dump({"people": [_person({1: (20.5, 10.5), 8: (20.5, 30.5)})]}, path.open("w"))
    people = read_people(path)
    assert people[0]["face_keypoints_2d"].shape == (70, 3) and not people[0]["hand_left_keypoints_2d"].any()
    picture = render_official((48, 40), people)
    assert picture[20, 17].tolist() == [153, 0, 0] and picture[20, 22].tolist() == [153, 0, 0]  # 6 wide: x-3..x+2
    assert not picture[20, 23].any() and not picture[20, 16].any()
    # the end disc (radius 6 around y = 10) is averaged into black pixels as the official drawing does: 153 // 2
    assert picture[5, 20].tolist() == [76, 0, 0] and not picture[4, 20].any()
    two = render_official((48, 40), people + people)
    assert two[20, 17].tolist() == [50, 0, 0]  # each person on its own canvas, added as uint8 (306 wraps)
    zero_x = read_people(path)
    zero_x[0]["pose_keypoints_2d"][8, 0] = 0.0
    assert not draw_person((48, 40), zero_x[0]).any()  # a limb touching x == 0 is not drawn, as there


def test_openpose_keypoints_of_another_frame_size_are_drawn_there_then_resized_by_nearest(tmp_path):
    from models.preprocess.openpose_official import OfficialOpenPoseImport

    clip = tmp_path / "clip"
    clip.mkdir()
    json.dump({"people": [_person({1: (41.5, 8.5), 8: (41.5, 60.5), 2: (20.5, 10.5)})]},
              (clip / "a_keypoints.json").open("w"))
    settings = BackendSettings(backend="json", import_dir=str(tmp_path), source_size="80x96")
    assert settings.source_size == (80, 96)
    out = OfficialOpenPoseImport(clip, settings.source_size)([np.zeros((48, 40, 3), np.uint8)])[0]
    big = render_official((96, 80), read_people(clip / "a_keypoints.json"))
    np.testing.assert_array_equal(out["payload"], np.asarray(Image.fromarray(big).resize((40, 48), Image.NEAREST)))
    with pytest.raises(PreprocessInputError, match="another resolution"):
        OfficialOpenPoseImport(clip)([np.zeros((24, 20, 3), np.uint8)])
    with pytest.raises(ValidationError, match="backend 'iuv' has no option 'source_size'"):
        BackendSettings(backend="iuv", import_dir="x", source_size="8x8")


# --------------------------------------------------------------------------------------------- storage
def test_planes_codec_round_trips_any_channel_count_and_refuses_garbage():
    frame = np.random.default_rng(0).integers(0, 255, (9, 7, 15), dtype=np.uint8)
    np.testing.assert_array_equal(decode_planes(encode_planes(frame)), frame)
    assert frame_size(frame, channels_first=False) == (9, 7) and frame_size(np.zeros((2, 9, 7)), True) == (9, 7)
    with pytest.raises(ShardError, match="missing header"):
        decode_planes(b"nope")


def test_code_payloads_are_resized_by_nearest_neighbour(data_root):
    layout = DatasetLayout(data_root, "d")
    iuv = np.zeros((4, 4, 3), np.uint8)
    iuv[:, 2:, 2] = 24
    for stage, payload in (("rgb", np.zeros((4, 4, 3), np.uint8)), ("densepose", iuv),
                           ("face15", np.full((4, 4, 15), 7, np.uint8))):
        write_stage(layout, stage, "c", backend="t", config={}, code_version="t",
                    frames=lambda p=payload: [{"payload": p}])
    frame = next(iter_clip_frames(layout, "c", ("rgb", "densepose", "face15"), (8, 8)))
    assert set(np.unique(frame["densepose"][..., 2])) == {0, 24}  # never blended part indices
    assert frame["face15"].shape == (8, 8, 15) and (frame["face15"] == 7).all()


# ------------------------------------------------------------------------------------------- statements
def test_official_presets_state_how_each_input_is_produced(tmp_path):
    rows = {(r["preset"], r["input"]): r for r in official_inputs()}
    assert set(rows) == {("label2city_2048", "labels"), ("label2city_2048", "instance"),
                         ("label2city_1024_g1", "labels"), ("label2city_1024_g1", "instance"),
                         ("edge2face_512", "face15"), ("pose2body_1024p", "densepose"),
                         ("pose2body_1024p", "openpose")}
    assert rows["pose2body_1024p", "densepose"]["computed from frames here"] == "no: import door only"
    assert "cannot be computed here" in rows["pose2body_1024p", "densepose"]["note"]
    assert rows["edge2face_512", "face15"]["computed from frames here"] == "approximately"
    assert rows["edge2face_512", "face15"]["exact via"] == "face15=landmarks (import)"
    assert rows["label2city_2048", "labels"]["encoding"] == "one_hot (35 ch, cityscapes_label_ids)"
    assert rows["label2city_2048", "labels"]["approximate via"] == "semantic=mmseg:label_space=cityscapes_label_ids"
    assert rows["label2city_2048", "instance"]["computed from frames here"] == "no: import door only"
    config = load_model_config("pose2body_1024p")
    assert load_official("pose2body_1024p").release.startswith("NVIDIA/vid2vid pose2body_1024p")
    assert load_official("street") is None and "official" not in config.to_dict()  # not part of model files
    data = {**config.to_dict(), "official": {"release": "x", "inputs": {"densepose": {"exact": ["pose=openpose"]},
                                                                        "openpose": {"note": "n"}}}}
    preset = tmp_path / "mine.yaml"
    preset.write_text(yaml.safe_dump(data))
    assert load_model_config(preset) == config  # the block is set aside
    with pytest.raises(ValueError, match="mine.yaml.*'pose=openpose' is not a backend of stage 'densepose'"):
        load_official(preset)
    data["official"]["inputs"] = {"densepose": {"note": "n"}}
    preset.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="must describe every input"):
        load_official(preset)


@pytest.mark.skipif(not _mediapipe_available(), reason="mediapipe side venv (.venv-mediapipe) not installed")
def test_mediapipe_face15_on_a_real_face_clip(data_root):
    pytest.importorskip("skimage", reason="scikit-image is a declared dependency; install it (pyproject.toml)")
    from storage.sample_videos import carphone_path
    from models.preprocess.sketch import MediapipeFaceSketch
    from storage.video import FramePolicy, VideoSource, decode

    frames = [f for k, f in enumerate(decode(VideoSource("carphone", carphone_path()), FramePolicy())) if k < 3]
    layout = DatasetLayout(data_root, "face")
    write_stage(layout, "rgb", "carphone", backend="t", config={}, code_version="t",
                frames=lambda: ({"payload": f} for f in frames))
    out = preprocess_clip(layout, "carphone", "face15", BackendSettings(backend="mediapipe"), RunSettings())
    assert (out.status, out.frames, out.empty) == ("written", 3, 0), out.error
    shard = ShardReader(layout.shard_path("face15", "carphone")).read()
    with MediapipeFaceSketch() as sketcher:  # the same landmarks, found independently of the stage
        faces, boxes = sketcher.landmarks(frames[0])
    expected = face15_encoding(frames[0], np.round(mediapipe_to_ibug68(faces[0])))
    np.testing.assert_array_equal(shard[0]["payload"], expected)
    x0, y0, x1, y1, _ = boxes[0]  # BlazeFace's box: the 14 polylines (distance 0) lie around the face
    ys, xs = np.nonzero((expected[..., 1:] == 0).any(2))
    inside = (xs > x0 - 0.2 * (x1 - x0)) & (xs < x1 + 0.2 * (x1 - x0)) & (ys > y0 - 0.6 * (y1 - y0)) & (ys < y1 + 0.2 * (y1 - y0))
    assert inside.mean() > 0.97 and len(xs) > 300
