"""Cityscapes train ids (the label space every semantic/instance shard uses) and the mappings into it.

torchvision's pretrained DeepLabV3 predicts the 20 PASCAL VOC classes (trained on a COCO subset), and its
Mask R-CNN the COCO things. Only the classes that exist in Cityscapes are mapped; everything else
becomes 255 (ignore) — a VOC-trained network cannot label road, building or sky, so for street scenes the
Cityscapes-trained mmsegmentation route (or dataset labels) is the one that matches the paper.
"""

from __future__ import annotations

import numpy as np

from models.preprocess.base import PreprocessInputError

IGNORE = 255
TRAIN_ID_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                  "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                  "motorcycle", "bicycle")
NUM_CLASSES = len(TRAIN_ID_NAMES)  # 19
THING_TRAIN_IDS = (11, 12, 13, 14, 15, 16, 17, 18)  # classes with instances in Cityscapes

# torchvision DeepLabV3 COCO_WITH_VOC_LABELS_V1 category index -> Cityscapes train id
VOC_TO_CITYSCAPES = {2: 18, 6: 15, 7: 13, 14: 17, 15: 11, 19: 16}  # bicycle bus car motorbike person train
# torchvision Mask R-CNN COCO_V1 category index -> Cityscapes train id (things only)
COCO_TO_CITYSCAPES = {1: 11, 2: 18, 3: 13, 4: 17, 6: 15, 7: 16, 8: 14}  # person bicycle car motorcycle bus train truck
# COCO category *names* (for imported COCO-format files, whose category ids vary by tool)
COCO_NAME_TO_CITYSCAPES = {"person": 11, "rider": 12, "bicycle": 18, "car": 13, "motorcycle": 17,
                           "motorbike": 17, "bus": 15, "train": 16, "truck": 14}


def lookup_table(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    table = np.full(size, IGNORE, np.uint8)
    for source, target in mapping.items():
        table[source] = target
    return table


def validate_train_ids(label: np.ndarray, what: str = "label map") -> np.ndarray:
    """Refuse ids outside 0..18 and 255: garbage labels must stop the clip, not poison training."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise PreprocessInputError(f"{what} must be H×W uint8 train ids, got {label.dtype} {label.shape}")
    ids = np.unique(label)
    unknown = [int(i) for i in ids if i >= NUM_CLASSES and i != IGNORE]
    if unknown:
        raise PreprocessInputError(f"{what} holds unknown label ids {unknown[:10]}: expected Cityscapes train "
                                   f"ids 0..{NUM_CLASSES - 1} or {IGNORE} (ignore)")
    return label


def validate_instance_ids(instance: np.ndarray, what: str = "instance map") -> np.ndarray:
    """Instance ids are 0 (stuff) or train_id*1000+k with a thing train id."""
    if instance.dtype != np.uint16 or instance.ndim != 2:
        raise PreprocessInputError(f"{what} must be H×W uint16, got {instance.dtype} {instance.shape}")
    ids = np.unique(instance)
    classes = ids[ids > 0] // 1000
    bad = [int(i) for i, c in zip(ids[ids > 0], classes) if int(c) not in THING_TRAIN_IDS]
    if bad:
        raise PreprocessInputError(f"{what} holds instance ids {bad[:10]} whose class (id // 1000) is not a "
                                   f"Cityscapes thing train id {THING_TRAIN_IDS}")
    return instance
