"""Tiny synthetic clips shared by the vid2vid tests (real tensors, no mocks)."""

from __future__ import annotations

import torch

from models.vid2vid.config import ModelConfig, load_model_config


def tiny_config(**overrides: object) -> ModelConfig:
    return load_model_config("tiny", **overrides)


def moving_clip(T: int = 6, H: int = 32, W: int = 64, B: int = 1, seed: int = 0, shift: int = 2) -> dict[str, torch.Tensor]:
    """A textured scene translating ``shift`` px/frame to the left, a 'car' (train id 13) on a road (0),
    sky (10) on top; its exact forward flow is (+shift, 0) wherever the texture moves."""
    g = torch.Generator().manual_seed(seed)
    big_w = W + shift * T + 8
    texture = torch.rand(B, 3, H, big_w, generator=g) * 2 - 1
    texture = torch.nn.functional.avg_pool2d(texture, 3, 1, 1)
    images, semantic, instance = [], [], []
    for t in range(T):
        x0 = shift * t
        images.append(texture[..., x0 : x0 + W])
        sem = torch.zeros(B, H, W, dtype=torch.long)
        sem[:, : H // 4] = 10
        inst = torch.zeros(B, H, W, dtype=torch.long)
        cx = (W // 2 + 3 * t) % (W - 12)
        sem[:, H // 2 : H // 2 + 8, cx : cx + 10] = 13
        inst[:, H // 2 : H // 2 + 8, cx : cx + 10] = 1
        semantic.append(sem)
        instance.append(inst)
    flow = torch.zeros(B, T - 1, 2, H, W)
    flow[:, :, 0] = -float(shift)  # x_t(p) = x_{t+1}(p - shift): forward flow is -shift in x
    return {
        "image": torch.stack(images, 1),
        "semantic": torch.stack(semantic, 1),
        "instance": torch.stack(instance, 1),
        "flow": flow,
    }
