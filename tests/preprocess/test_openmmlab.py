"""OpenMMLab adapters (optional extra, installed by `make openmmlab`): the bundled Cityscapes configs
build, stand-in checkpoints in the OpenMMLab layout (``meta`` with numpy objects + ``state_dict``) load
through the registry with weights_only, and predictions come out as Cityscapes train / instance ids."""

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("mmcv.ops", reason="OpenMMLab extra not installed: run `make openmmlab`")

from models.preprocess.labels import validate_instance_ids, validate_train_ids  # noqa: E402
from models.preprocess.openmmlab import load_config  # noqa: E402
from models.weights import REGISTRY, file_sha256  # noqa: E402


def _standin(tmp_path, monkeypatch, name, model):
    spec = REGISTRY[name]
    path = tmp_path / spec.filename
    meta = {"mmseg_version": "1.2.2", "seed": np.int64(0), "mean": np.array([123.675, 116.28, 103.53])}
    torch.save({"meta": meta, "state_dict": model.state_dict()}, path)
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(spec, sha256=file_sha256(path)))


def test_mmseg_deeplabv3_cityscapes_adapter(tmp_path, monkeypatch):
    from mmseg.apis import init_model

    from models.preprocess.semantic import MMSEG_MODELS, MMSegSemantic

    package, config, weights = MMSEG_MODELS["deeplabv3_r50_cityscapes"]
    torch.manual_seed(0)
    _standin(tmp_path, monkeypatch, weights, init_model(load_config(package, config), device="cpu"))
    backend = MMSegSemantic(weights_dir=tmp_path)
    out = backend([np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)])
    assert out[0]["payload"].shape == (32, 64)
    validate_train_ids(out[0]["payload"])


def test_mmdet_mask_rcnn_cityscapes_adapter(tmp_path, monkeypatch):
    from mmdet.apis import init_detector

    from models.preprocess.instance import MMDET_MODELS, MMDetMaskRCNN

    package, config, weights = MMDET_MODELS["mask_rcnn_r50_cityscapes"]
    torch.manual_seed(0)
    _standin(tmp_path, monkeypatch, weights, init_detector(load_config(package, config), device="cpu"))
    backend = MMDetMaskRCNN(weights_dir=tmp_path, score_threshold=0.0)
    out = backend([np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)])
    assert out[0]["payload"].shape == (64, 96)
    validate_instance_ids(out[0]["payload"])
