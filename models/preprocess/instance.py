"""Instance segmentation backends → H×W uint16 ids ``train_id * 1000 + k`` (k = 1.. per class; 0 = stuff).

- ``torchvision``: Mask R-CNN R50-FPN (COCO); COCO classes that exist as Cityscapes things are kept.
- ``mmdet``: mmdet's Cityscapes Mask R-CNN (OpenMMLab extra).
- ``coco_rle``: import COCO-format instance results (RLE masks, ``pycocotools.mask``) — the door for
  detectron2 (not installable here) or any other tool's output.
- ``dataset``: instances that came with the source, validated (tasks/preprocess.py).

Overlaps are settled by score: higher-scoring masks are painted last. Frames without instances are
recorded as empty.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from models.preprocess.base import Frame, Output, PreprocessInputError, check_frames
from models.preprocess.flow_common import resize_frame
from models.preprocess.labels import COCO_NAME_TO_CITYSCAPES, COCO_TO_CITYSCAPES, validate_instance_ids
from models.weights import load_into

MMDET_CITYSCAPES_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")


def compose_instances(shape: tuple[int, int], masks: Sequence[np.ndarray], train_ids: Sequence[int],
                      scores: Sequence[float]) -> np.ndarray:
    """Paint boolean masks into one uint16 id map, numbering instances per class in descending score."""
    instance = np.zeros(shape, np.uint16)
    order = sorted(range(len(masks)), key=lambda i: -float(scores[i]))
    counters: dict[int, int] = defaultdict(int)
    ids = {}
    for i in order:
        counters[train_ids[i]] += 1
        if counters[train_ids[i]] > 999:
            raise PreprocessInputError(f"more than 999 instances of class {train_ids[i]} in one frame")
        ids[i] = train_ids[i] * 1000 + counters[train_ids[i]]
    for i in reversed(order):  # lowest score first, so the best mask wins overlaps
        instance[np.asarray(masks[i], bool)] = ids[i]
    return instance


def _output(instance: np.ndarray) -> Output:
    return {"payload": validate_instance_ids(instance), "empty": not bool(instance.any())}


class TorchvisionMaskRCNN:
    name = "torchvision"

    def __init__(self, weights_dir: str | os.PathLike[str] | None = None, device: str = "cpu",
                 resolution: tuple[int, int] | None = None, score_threshold: float = 0.5) -> None:
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        net = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
        self.net = load_into(net, "maskrcnn_resnet50_fpn", weights_dir).eval().to(device)
        self.device, self.resolution, self.threshold = torch.device(device), resolution, score_threshold

    @torch.no_grad()
    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        images = [torch.from_numpy(resize_frame(f, self.resolution)).permute(2, 0, 1).float().div(255).to(self.device)
                  for f in frames]
        outputs = []
        for det in self.net(images):
            keep = [i for i, (label, score) in enumerate(zip(det["labels"].tolist(), det["scores"].tolist()))
                    if score >= self.threshold and label in COCO_TO_CITYSCAPES]
            masks = []
            for i in keep:
                m = det["masks"][i, 0].cpu().numpy()
                if m.shape != (h, w):
                    m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
                masks.append(m > 0.5)
            labels = [COCO_TO_CITYSCAPES[int(det["labels"][i])] for i in keep]
            outputs.append(_output(compose_instances((h, w), masks, labels, [float(det["scores"][i]) for i in keep])))
        return outputs


MMDET_MODELS = {
    "mask_rcnn_r50_cityscapes": ("mmdet", "cityscapes/mask-rcnn_r50_fpn_1x_cityscapes.py",
                                 "mmdet_mask_rcnn_r50_cityscapes"),
}


class MMDetMaskRCNN:
    name = "mmdet"

    def __init__(self, model: str = "mask_rcnn_r50_cityscapes", weights_dir: str | os.PathLike[str] | None = None,
                 device: str = "cpu", resolution: tuple[int, int] | None = None, score_threshold: float = 0.5) -> None:
        from models.preprocess.openmmlab import build_model

        apis, self.net = build_model("mmdet.apis", "init_detector", *MMDET_MODELS[model], weights_dir, device)
        self._infer = apis.inference_detector
        self.resolution, self.threshold = resolution, score_threshold

    @torch.no_grad()
    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        outputs = []
        for frame in frames:
            bgr = cv2.cvtColor(resize_frame(frame, self.resolution), cv2.COLOR_RGB2BGR)
            pred = self._infer(self.net, bgr).pred_instances
            keep = (pred.scores >= self.threshold).nonzero().flatten().tolist()
            masks = []
            for i in keep:
                m = pred.masks[i].cpu().numpy().astype(np.uint8)
                if m.shape != (h, w):
                    m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
                masks.append(m.astype(bool))
            labels = [11 + int(pred.labels[i]) for i in keep]  # Cityscapes things are train ids 11..18 in order
            outputs.append(_output(compose_instances((h, w), masks, labels, [float(pred.scores[i]) for i in keep])))
        return outputs


class CocoRLEImport:
    """COCO-format instance masks for one clip: ``image_id`` = frame index, ``segmentation`` an RLE.

    Accepts a results list (detectron2's ``coco_instances_results.json``: COCO category ids) or a full
    dataset dict with ``annotations`` and ``categories`` (mapped by category name).
    """

    name = "coco_rle"

    def __init__(self, path: Path, score_threshold: float = 0.5) -> None:
        from pycocotools import mask as mask_utils

        self._decode = mask_utils.decode
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise PreprocessInputError(f"cannot read COCO instances {path}: {exc}") from None
        if isinstance(data, dict):
            names = {c["id"]: c["name"] for c in data.get("categories", [])}
            category = {cid: COCO_NAME_TO_CITYSCAPES[n] for cid, n in names.items() if n in COCO_NAME_TO_CITYSCAPES}
            annotations = data.get("annotations", [])
        elif isinstance(data, list):
            category, annotations = dict(COCO_TO_CITYSCAPES), data
        else:
            raise PreprocessInputError(f"{path}: neither a COCO results list nor a COCO dataset")
        self.by_frame: dict[int, list[dict]] = defaultdict(list)
        for ann in annotations:
            try:
                frame, cat, seg = int(ann["image_id"]), int(ann["category_id"]), ann["segmentation"]
            except (KeyError, TypeError, ValueError):
                raise PreprocessInputError(f"{path}: annotation without image_id/category_id/segmentation") from None
            if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
                raise PreprocessInputError(f"{path}: frame {frame} segmentation is not an RLE dict")
            if cat in category and float(ann.get("score", 1.0)) >= score_threshold:
                self.by_frame[frame].append({"rle": seg, "train_id": category[cat], "score": float(ann.get("score", 1.0))})
        self.path, self._next = Path(path), 0

    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        outputs = []
        for _ in frames:
            anns = self.by_frame.get(self._next, [])
            masks = []
            for ann in anns:
                rle = dict(ann["rle"])
                if list(rle["size"]) != [h, w]:
                    raise PreprocessInputError(f"{self.path}: frame {self._next} mask is {rle['size'][1]}x{rle['size'][0]}, "
                                               f"the clip's frames are {w}x{h}")
                if isinstance(rle["counts"], str):
                    rle["counts"] = rle["counts"].encode()
                masks.append(self._decode(rle).astype(bool))
            outputs.append(_output(compose_instances((h, w), masks, [a["train_id"] for a in anns],
                                                     [a["score"] for a in anns])))
            self._next += 1
        return outputs
