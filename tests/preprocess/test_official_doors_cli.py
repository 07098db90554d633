"""The import doors for the released models' encodings through the `vid2vid` CLI, as a user runs them: on a
Cityscapes-named clip, gtFine label/instance ids, 68-point landmark files, DensePose IUV PNGs and OpenPose
JSON imported on Dask against a real Prefect server; a train-id model refused on label-id data; `vid2vid
weights` states what each release needs. (A missing file's quarantine: test_official_encodings.py.)"""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from storage.ingest import IngestConfig, clip_ids, ingest_clip
from storage.layout import DatasetLayout
from storage.manifest import merge_records
from storage.shards import ShardReader
from storage.video import discover

pytestmark = pytest.mark.usefixtures("prefect_server")
CLIP, FRAMES, W, H = "aachen_000001", (17, 18, 19), 64, 32


def _inputs(tmp):
    """The frames (leftImg8bit_sequence naming) and one file per frame for every import door."""
    frames = tmp / "leftImg8bit_sequence" / "train" / "aachen"
    gt = tmp / "gtFine" / "train" / "aachen"
    for folder in (frames, gt, tmp / "landmarks" / CLIP, tmp / "iuv" / CLIP, tmp / "openpose" / CLIP):
        folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    face = np.array([[8 + 3 * i, 6 + (i if i < 9 else 16 - i)] for i in range(17)] +
                    [[14 + 2 * i, 4] for i in range(10)] + [[30, 6 + i] for i in range(9)] +
                    [[20 + i, 8] for i in range(12)] + [[24 + i, 18] for i in range(20)])
    for k, n in enumerate(FRAMES):
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(frames / f"{CLIP}_{n:06d}_leftImg8bit.png")
        label = np.full((2 * H, 2 * W), 7, np.uint8)
        label[:, W + 2 * k:] = 26
        instance = label.astype(np.uint16)
        instance[label == 26] = 26001
        cv2.imwrite(str(gt / f"{CLIP}_{n:06d}_gtFine_labelIds.png"), label)
        cv2.imwrite(str(gt / f"{CLIP}_{n:06d}_gtFine_instanceIds.png"), instance)
        np.savetxt(tmp / "landmarks" / CLIP / f"{n:05d}.txt", face + k, fmt="%d", delimiter=",")
        iuv = np.zeros((H, W, 3), np.uint8)
        iuv[8:24, 20:40] = (5 + k, 100, 200)  # I, U, V as DensePose writes them (BGR file: I in blue)
        cv2.imwrite(str(tmp / "iuv" / CLIP / f"frame{n:05d}_IUV.png"), iuv)
        pose = np.zeros((25, 3))
        pose[1], pose[8] = (30.5 + k, 4.5, 0.9), (30.5 + k, 28.5, 0.8)
        (tmp / "openpose" / CLIP / f"{CLIP}_{n:012d}_keypoints.json").write_text(
            json.dumps({"people": [{"pose_keypoints_2d": pose.reshape(-1).tolist()}]}))
    return frames, tmp / "gtFine"


def test_every_import_door_through_the_cli_then_a_train_id_model_is_refused(tmp_path, data_root, vid2vid):
    frames, gt = _inputs(tmp_path)
    root = ["--data-root", str(data_root)]
    layout = DatasetLayout(data_root, "city")
    (source,) = discover(frames)  # the Cityscapes sequence, as `vid2vid ingest` finds it (clip id <city>_<seq>)
    merge_records(layout, [ingest_clip(layout, source, clip_ids([source])[0], IngestConfig(val_fraction=0))])
    done = vid2vid(*root, "preprocess", "--dataset", "city", "--workers", "1",
                   "--stages", "semantic,instance,flow,face15,densepose,openpose",
                   "--backend", f"semantic=cityscapes:import_dir={gt}", "--backend", f"instance=cityscapes:import_dir={gt}",
                   "--backend", "flow=dis:preset=ultrafast",
                   "--backend", f"face15=landmarks:import_dir={tmp_path / 'landmarks'}",
                   "--backend", f"densepose=iuv:import_dir={tmp_path / 'iuv'}",
                   "--backend", f"openpose=json:import_dir={tmp_path / 'openpose'}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"quarantined {CLIP}" not in done.stdout and "failed" not in done.stdout.split("┘")[-1]
    semantic = ShardReader(layout.shard_path("semantic", CLIP))
    assert semantic.meta.extra["label_space"] == "cityscapes_label_ids"
    labels = semantic.read()
    assert [int((f["payload"] == 26).sum()) for f in labels] == [(W // 2 - k) * H for k in range(3)]
    instance = ShardReader(layout.shard_path("instance", CLIP)).read()[0]["payload"]
    assert set(np.unique(instance)) == {7, 26001}
    face = ShardReader(layout.shard_path("face15", CLIP)).read()
    assert [f["payload"].shape for f in face] == [(H, W, 15)] * 3 and (face[0]["payload"][..., 1:] == 0).any()
    iuv = ShardReader(layout.shard_path("densepose", CLIP)).read()
    assert iuv[2]["payload"][10, 25].tolist() == [200, 100, 7]  # V, U, I as the official loader reads it
    pose = ShardReader(layout.shard_path("openpose", CLIP)).read()
    assert pose[0]["payload"][16, 30].tolist() == [153, 0, 0] and not pose[0]["empty"]  # limb neck-hip, its colour

    # a train-id model on label-id shards: refused before any Ray, naming both label spaces
    train = vid2vid(*root, "train", "--dataset", "city", "--config", "tiny", "--max-steps", "1", "--workers", "1")
    assert train.returncode != 0
    assert "as cityscapes_train_ids, but dataset 'city' holds cityscapes_label_ids" in train.stderr, train.stderr

    weights = vid2vid("weights")
    assert weights.returncode == 0 and "pose2body_1024p" in weights.stdout and "import door only" in weights.stdout
