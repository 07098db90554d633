"""Semantic segmentation backends → H×W uint8 Cityscapes train ids (labels.py says how ids are mapped).

- ``torchvision``: DeepLabV3 ResNet-50/101 with torchvision's COCO-with-VOC-labels weights. Those know 20
  VOC classes, so only person, rider-less vehicles etc. come out; all else is 255 (ignore). Honest, but not
  the Cityscapes model the paper used.
- ``mmseg``: mmsegmentation's Cityscapes-trained DeepLabV3 (the paper's route), config + checkpoint; with
  ``label_space=cityscapes_label_ids`` its train ids are written as Cityscapes label ids (cityscapes.py).
- ``dataset``: labels that came with the source; validated, not recomputed (tasks/preprocess.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.preprocess.base import Frame, Output, check_frames
from models.preprocess.cityscapes import train_to_label_ids, validate_label_ids
from models.preprocess.flow_common import resize_frame
from models.preprocess.labels import VOC_TO_CITYSCAPES, lookup_table, validate_train_ids
from models.weights import load_into

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class TorchvisionDeepLab:
    name = "torchvision"

    def __init__(self, arch: Literal["resnet50", "resnet101"] = "resnet50",
                 weights_dir: str | os.PathLike[str] | None = None, device: str = "cpu",
                 resolution: tuple[int, int] | None = None) -> None:
        from torchvision.models import segmentation

        build = {"resnet50": segmentation.deeplabv3_resnet50, "resnet101": segmentation.deeplabv3_resnet101}[arch]
        net = build(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
        self.net = load_into(net, f"deeplabv3_{arch}", weights_dir).eval().to(device)
        self.device, self.resolution = torch.device(device), resolution
        self.table = lookup_table(VOC_TO_CITYSCAPES)

    @torch.no_grad()
    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        batch = np.stack([resize_frame(f, self.resolution) for f in frames])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255)
        x = ((x - IMAGENET_MEAN) / IMAGENET_STD).to(self.device)
        logits = self.net(x)["out"]
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        classes = logits.argmax(1).cpu().numpy().astype(np.uint8)
        return [{"payload": validate_train_ids(self.table[c])} for c in classes]


# mmseg config (bundled) and registry entry per model name
MMSEG_MODELS = {
    "deeplabv3_r50_cityscapes": ("mmseg", "deeplabv3/deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024.py",
                                 "mmseg_deeplabv3_r50_cityscapes"),
}


class MMSegSemantic:
    """mmsegmentation model built from its bundled config, weights loaded through the registry."""

    name = "mmseg"

    def __init__(self, model: str = "deeplabv3_r50_cityscapes", weights_dir: str | os.PathLike[str] | None = None,
                 device: str = "cpu", resolution: tuple[int, int] | None = None,
                 label_space: str = "cityscapes_train_ids") -> None:
        from models.preprocess.openmmlab import build_model

        apis, self.net = build_model("mmseg.apis", "init_model", *MMSEG_MODELS[model], weights_dir, device)
        self._infer = apis.inference_model
        self.resolution, self.label_ids = resolution, label_space == "cityscapes_label_ids"

    @torch.no_grad()
    def __call__(self, frames: Sequence[Frame]) -> list[Output]:
        h, w = check_frames(frames)
        outputs = []
        for frame in frames:
            bgr = cv2.cvtColor(resize_frame(frame, self.resolution), cv2.COLOR_RGB2BGR)
            label = self._infer(self.net, bgr).pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)
            if label.shape != (h, w):
                label = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
            label = validate_train_ids(label, "mmseg prediction")
            outputs.append({"payload": validate_label_ids(train_to_label_ids(label)) if self.label_ids else label})
        return outputs
