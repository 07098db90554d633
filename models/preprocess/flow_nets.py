"""Learned flow backends: FlowNet2 (plain PyTorch, official checkpoint) and torchvision's RAFT.

Both load their weights through the registry (models/weights.py): a missing file is an error naming it,
never a random init. Occlusion comes from the same forward-backward check as DIS, so every flow backend
writes the same kind of occlusion map; forward and backward pairs go through the network in one batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from models.preprocess.base import Frame, check_frames
from models.preprocess.flow_common import forward_backward_occlusion, resize_flow
from models.weights import load_into


def _to_tensor(frames: Sequence[Frame], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().to(device)


class _NetFlow:
    name = "net"

    def __init__(self, device: str, resolution: tuple[int, int] | None, multiple: int, min_side: int) -> None:
        self.device, self.resolution = torch.device(device), resolution
        self.multiple, self.min_side = multiple, min_side

    def _size(self, height: int, width: int) -> tuple[int, int]:
        h, w = self.resolution or (height, width)
        m, low = self.multiple, self.min_side
        return max(low, int(round(h / m)) * m), max(low, int(round(w / m)) * m)

    def _flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # B×3×h×w in 0..255 -> B×2×h×w
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, first: Sequence[Frame], second: Sequence[Frame]) -> list[tuple[np.ndarray, np.ndarray]]:
        height, width = check_frames(first)
        check_frames(second, (height, width))
        size = self._size(height, width)
        a = F.interpolate(_to_tensor(first, self.device), size=size, mode="bilinear", align_corners=False)
        b = F.interpolate(_to_tensor(second, self.device), size=size, mode="bilinear", align_corners=False)
        both = self._flow(torch.cat([a, b]), torch.cat([b, a])).float().cpu().numpy()
        n = len(first)
        results = []
        for forward, backward in zip(both[:n], both[n:]):
            occlusion = forward_backward_occlusion(forward, backward)
            if occlusion.shape != (height, width):
                occlusion = cv2.resize(occlusion, (width, height), interpolation=cv2.INTER_NEAREST)
            results.append((resize_flow(forward, (height, width)), occlusion))
        return results


class FlowNet2Flow(_NetFlow):
    """FlowNet2 from ``FlowNet2_checkpoint.pth.tar``; frames are resized to multiples of 64 and back."""

    name = "flownet2"

    def __init__(self, weights_dir: str | os.PathLike[str] | None = None, device: str = "cpu",
                 resolution: tuple[int, int] | None = None) -> None:
        super().__init__(device, resolution, 64, 64)
        from models.preprocess.flownet2 import FlowNet2

        with torch.device("meta"):  # 162 M parameters: skip a random init the checkpoint overwrites anyway
            net = FlowNet2()
        net = net.to_empty(device="cpu")
        self.net = load_into(net, "flownet2", weights_dir).eval().to(self.device)

    def _flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net(torch.stack([a, b], 2))


class RAFTFlow(_NetFlow):
    """torchvision ``raft_large`` (C+T+S+K+H weights); inputs scaled to [-1, 1], sides multiples of 8."""

    name = "raft"

    def __init__(self, weights_dir: str | os.PathLike[str] | None = None, device: str = "cpu",
                 resolution: tuple[int, int] | None = None, iterations: int = 12) -> None:
        super().__init__(device, resolution, 8, 128)  # RAFT's correlation pyramid needs >= 128 px
        from torchvision.models.optical_flow import raft_large

        self.iterations = iterations
        self.net = load_into(raft_large(weights=None, progress=False), "raft_large", weights_dir).eval().to(self.device)

    def _flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net(a / 127.5 - 1.0, b / 127.5 - 1.0, num_flow_updates=self.iterations)[-1]
