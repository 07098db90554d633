"""OpenCV DIS optical flow: the default flow backend — CPU, no weights, fast enough for every frame."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from models.preprocess.base import Frame, check_frames
from models.preprocess.flow_common import forward_backward_occlusion, resize_flow, resize_frame

PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


class DISFlow:
    """Forward DIS flow t→t+1 and occlusion from a backward DIS pass (forward-backward check).

    ``resolution`` (height, width) runs DIS at another size; flow is scaled back to the frame size.
    """

    name = "dis"

    def __init__(self, preset: Literal["ultrafast", "fast", "medium"] = "medium",
                 resolution: tuple[int, int] | None = None) -> None:
        self.preset, self.resolution = preset, resolution
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])

    def _gray(self, frame: Frame) -> np.ndarray:
        return cv2.cvtColor(resize_frame(frame, self.resolution), cv2.COLOR_RGB2GRAY)

    def pair(self, first: Frame, second: Frame) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._gray(first), self._gray(second)
        forward = self._dis.calc(a, b, None).transpose(2, 0, 1)
        backward = self._dis.calc(b, a, None).transpose(2, 0, 1)
        occlusion = forward_backward_occlusion(forward, backward)
        size = first.shape[:2]
        if occlusion.shape != size:
            occlusion = cv2.resize(occlusion, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        return resize_flow(forward, size), occlusion

    def __call__(self, first: Sequence[Frame], second: Sequence[Frame]) -> list[tuple[np.ndarray, np.ndarray]]:
        size = check_frames(first)
        check_frames(second, size)
        return [self.pair(a, b) for a, b in zip(first, second)]
