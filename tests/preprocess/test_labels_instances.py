"""Semantic and instance backends: stand-in checkpoints in torchvision's layout, label mapping into
Cityscapes train ids, unknown ids refused, and the COCO RLE importer against pycocotools' own encoder."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from models.preprocess.base import PreprocessInputError
from models.preprocess.instance import CocoRLEImport, compose_instances
from models.preprocess.labels import VOC_TO_CITYSCAPES, lookup_table, validate_instance_ids, validate_train_ids
from models.weights import REGISTRY, MissingWeightsError, file_sha256


def _standin(tmp_path, monkeypatch, name, module):
    """Random init saved under the registered file name; the registry entry is pointed at its digest."""
    spec = REGISTRY[name]
    path = tmp_path / spec.filename
    torch.save(module.state_dict(), path)
    monkeypatch.setitem(REGISTRY, name, dataclasses.replace(spec, sha256=file_sha256(path)))
    return path


def test_voc_classes_map_to_cityscapes_train_ids_and_the_rest_is_ignored():
    table = lookup_table(VOC_TO_CITYSCAPES)
    assert table[15] == 11 and table[7] == 13 and table[6] == 15 and table[19] == 16
    assert table[14] == 17 and table[2] == 18
    assert table[0] == 255 and table[3] == 255 and table[20] == 255  # background, bird, tv: no Cityscapes class


def test_unknown_label_and_instance_ids_are_errors():
    label = np.zeros((4, 4), np.uint8)
    label[0, 0] = 19
    with pytest.raises(PreprocessInputError, match=r"unknown label ids \[19\]"):
        validate_train_ids(label)
    validate_train_ids(np.full((2, 2), 255, np.uint8))
    with pytest.raises(PreprocessInputError, match="5001"):
        validate_instance_ids(np.array([[0, 5001]], np.uint16))  # class 5 (pole) has no instances
    validate_instance_ids(np.array([[0, 11001, 13002]], np.uint16))


def test_torchvision_deeplab_loads_a_standin_and_emits_train_ids(tmp_path, monkeypatch):
    from torchvision.models.segmentation import deeplabv3_resnet50

    from models.preprocess.semantic import TorchvisionDeepLab

    with pytest.raises(MissingWeightsError, match="deeplabv3_resnet50_coco-cd0a2569.pth"):
        TorchvisionDeepLab(weights_dir=tmp_path)
    torch.manual_seed(0)
    _standin(tmp_path, monkeypatch, "deeplabv3_resnet50",
             deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=21, aux_loss=True))
    backend = TorchvisionDeepLab(weights_dir=tmp_path)
    frames = [np.random.default_rng(i).integers(0, 255, (24, 40, 3), dtype=np.uint8) for i in range(2)]
    out = backend(frames)
    allowed = set(VOC_TO_CITYSCAPES.values()) | {255}
    assert [o["payload"].shape for o in out] == [(24, 40)] * 2
    assert all(o["payload"].dtype == np.uint8 and set(np.unique(o["payload"])) <= allowed for o in out)


def test_torchvision_maskrcnn_loads_a_standin_and_emits_valid_instance_ids(tmp_path, monkeypatch):
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from models.preprocess.instance import TorchvisionMaskRCNN

    torch.manual_seed(0)
    _standin(tmp_path, monkeypatch, "maskrcnn_resnet50_fpn",
             maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91))
    backend = TorchvisionMaskRCNN(weights_dir=tmp_path, score_threshold=0.0)
    out = backend([np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)])
    assert out[0]["payload"].shape == (48, 64) and out[0]["payload"].dtype == np.uint16
    validate_instance_ids(out[0]["payload"])
    assert out[0]["empty"] == (not out[0]["payload"].any())


def test_compose_instances_numbers_per_class_by_score_and_best_mask_wins():
    a = np.zeros((4, 6), bool); a[:, :4] = True
    b = np.zeros((4, 6), bool); b[:, 2:] = True
    c = np.zeros((4, 6), bool); c[0, 0] = True
    out = compose_instances((4, 6), [a, b, c], [13, 13, 11], [0.6, 0.9, 0.7])
    assert out[0, 5] == 13001 and out[0, 3] == 13001  # b: best car, wins the overlap
    assert out[1, 0] == 13002 and out[0, 0] == 11001


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    return rle


def test_coco_rle_import_round_trips_pycocotools_masks(tmp_path):
    h, w = 20, 30
    person = np.zeros((h, w), bool); person[2:12, 3:9] = True
    car = np.zeros((h, w), bool); car[10:18, 10:28] = True
    results = [  # detectron2's coco_instances_results.json: COCO category ids, one entry per detection
        {"image_id": 0, "category_id": 1, "segmentation": _rle(person), "score": 0.9},
        {"image_id": 0, "category_id": 3, "segmentation": _rle(car), "score": 0.8},
        {"image_id": 0, "category_id": 62, "segmentation": _rle(car), "score": 0.99},  # chair: not a Cityscapes thing
        {"image_id": 1, "category_id": 3, "segmentation": _rle(car), "score": 0.3},  # below threshold
    ]
    path = tmp_path / "clip.json"
    path.write_text(json.dumps(results))
    out = CocoRLEImport(path)([np.zeros((h, w, 3), np.uint8)] * 3)
    first = out[0]["payload"]
    assert set(np.unique(first)) == {0, 11001, 13001}
    np.testing.assert_array_equal(first == 11001, person)
    np.testing.assert_array_equal(first == 13001, car)
    assert out[1]["empty"] and out[2]["empty"] and not out[0]["empty"]

    dataset = {"categories": [{"id": 7, "name": "car"}, {"id": 9, "name": "tree"}],
               "annotations": [{"image_id": 0, "category_id": 7, "segmentation": _rle(car)},
                               {"image_id": 0, "category_id": 9, "segmentation": _rle(person)}]}
    path.write_text(json.dumps(dataset))
    only = CocoRLEImport(path)([np.zeros((h, w, 3), np.uint8)])[0]["payload"]
    np.testing.assert_array_equal(only == 13001, car)
    assert set(np.unique(only)) == {0, 13001}


def test_coco_rle_import_refuses_masks_of_another_size_and_bad_files(tmp_path):
    path = tmp_path / "clip.json"
    path.write_text(json.dumps([{"image_id": 0, "category_id": 1, "segmentation": _rle(np.ones((10, 10), bool))}]))
    with pytest.raises(PreprocessInputError, match="10x10"):
        CocoRLEImport(path)([np.zeros((20, 30, 3), np.uint8)])
    path.write_text("{not json")
    with pytest.raises(PreprocessInputError, match="cannot read"):
        CocoRLEImport(path)
    path.write_text(json.dumps([{"image_id": 0, "category_id": 1, "segmentation": [[1, 2, 3, 4]]}]))
    with pytest.raises(PreprocessInputError, match="not an RLE"):
        CocoRLEImport(path)
