"""The training batch contract, and the encoders that turn its label maps into network inputs.

A batch is a ``dict[str, Tensor]``; T frames of one clip window per sample (the storage-side dataset
produces it, the trainer consumes it). Shapes, with B samples, T frames, H x W pixels:

=================== ======================== ===============================================================
key                 shape / dtype            meaning
=================== ======================== ===============================================================
``semantic``        (B, T, H, W) int64       Cityscapes *train ids* 0..num_classes-1; 255 = ignore (encoded
                                             as an all-zero one-hot row). Needed when num_classes > 0.
``instance``        (B, T, H, W) int32/64    instance ids (any integers; only equality matters). Needed
                                             when ``input.use_instance`` or multimodal synthesis is on.
``extra``           (B, T, C, H, W) float    optional RGB-like sources (sketch, edges, pose) in [-1, 1];
                                             C = ``input.extra_channels``.
``image``           (B, T, 3, H, W) float    real frames in [-1, 1].
``flow``            (B, T-1, 2, H, W) float  optional reference *forward* flow t -> t+1 on frame t's grid,
                                             in pixels: x_t(p) ~ x_{t+1}(p + flow[t](p)); [:,:,0] = dx.
``flow_backward``   (B, T-1, 2, H, W) float  optional reference *backward* flow t+1 -> t on frame t+1's
                                             grid (x_{t+1}(p) ~ x_t(p + b[t](p))). Preferred if present.
``flow_confidence`` (B, T-1, 1, H, W) float  optional weight in [0, 1] of each reference flow pixel, on the
                                             grid of ``flow`` (frame t; frame t+1 for ``flow_backward``).
``occlusion``       (B, T-1, 1, H, W) float  optional, 1 = occluded; used as ``1 - occlusion`` when no
                                             confidence is given.
=================== ======================== ===============================================================

Flow conventions. The generator's W predicts, for frame t, the flow that backward-warps output t-1 onto
frame t (on frame t's grid), i.e. the paper's w~_{t-1} of Eq. 4. Eq. 8 compares it with the reference
backward flow from frame t to t-1, which is ``flow_backward[:, t-1]`` or, from the dataset's forward flow,
:func:`~models.vid2vid.warp.forward_to_backward_flow` of ``flow[:, t-1]`` (confidences are carried onto
frame t's grid by the same warp). Without any reference flow the EPE term is skipped (the warp term of
Eq. 8 needs none) and D_V is conditioned on zero flow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from .config import ModelConfig
from .warp import forward_to_backward_flow, warp

Batch = dict[str, torch.Tensor]


def validate_batch(batch: Mapping[str, torch.Tensor], config: ModelConfig) -> None:
    """Raise ValueError naming the first key that breaks the contract above."""
    if "image" not in batch:
        raise ValueError("batch needs 'image' (B, T, 3, H, W)")
    image = batch["image"]
    if image.dim() != 5 or image.shape[2] != 3:
        raise ValueError(f"'image' must be (B, T, 3, H, W), got {tuple(image.shape)}")
    b, t, _, h, w = image.shape
    need = {"semantic": config.input.num_classes > 0}
    need["instance"] = config.input.use_instance or config.multimodal.enabled
    need["extra"] = config.input.extra_channels > 0
    expected = {
        "semantic": (b, t, h, w),
        "instance": (b, t, h, w),
        "extra": (b, t, config.input.extra_channels, h, w),
        "flow": (b, t - 1, 2, h, w),
        "flow_backward": (b, t - 1, 2, h, w),
        "flow_confidence": (b, t - 1, 1, h, w),
        "occlusion": (b, t - 1, 1, h, w),
    }
    for key, shape in expected.items():
        if key not in batch:
            if need.get(key, False):
                raise ValueError(f"batch needs {key!r} {shape} for this model config")
            continue
        if tuple(batch[key].shape) != shape:
            raise ValueError(f"batch[{key!r}] must have shape {shape}, got {tuple(batch[key].shape)}")
    if "semantic" in batch and batch["semantic"].is_floating_point():
        raise ValueError("'semantic' must hold integer train ids")


def remap_labels(semantic: torch.Tensor, mapping: Mapping[int, int] | None) -> torch.Tensor:
    """Semantic manipulation: replace label ids, e.g. ``{8: 2}`` turns vegetation into building."""
    if not mapping:
        return semantic
    table = torch.arange(256, device=semantic.device, dtype=semantic.dtype)
    for old, new in mapping.items():
        table[int(old)] = int(new)
    return table[semantic.clamp(0, 255).long()].to(semantic.dtype)


def one_hot_labels(semantic: torch.Tensor, num_classes: int, ignore_label: int = 255) -> torch.Tensor:
    """(N, H, W) ids -> (N, num_classes, H, W) float; ignore (and any id >= num_classes) -> zero row."""
    labels = semantic.long()
    valid = (labels >= 0) & (labels < num_classes) & (labels != ignore_label)
    onehot = F.one_hot(torch.where(valid, labels, 0), num_classes).permute(0, 3, 1, 2).float()
    return onehot * valid.unsqueeze(1).float()


def instance_boundaries(instance: torch.Tensor) -> torch.Tensor:
    """(N, H, W) ids -> (N, 1, H, W) float, 1 on both sides of every edge between different ids."""
    edge = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    dx = instance[:, :, 1:] != instance[:, :, :-1]
    dy = instance[:, 1:, :] != instance[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge.unsqueeze(1).float()


def background_mask(semantic: torch.Tensor, foreground_classes: Sequence[int]) -> torch.Tensor:
    """m_B of Eq. 9: (N, H, W) ids -> (N, 1, H, W), 1 on background (incl. ignore), 0 on foreground."""
    fg = torch.zeros(semantic.shape, dtype=torch.bool, device=semantic.device)
    for cls in foreground_classes:
        fg |= semantic == cls
    return (~fg).unsqueeze(1).float()


def encode_source(
    config: ModelConfig,
    semantic: torch.Tensor | None = None,
    instance: torch.Tensor | None = None,
    extra: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-frame source s_t: [one-hot labels, instance boundary, extra channels], (..., C, H, W).

    Leading dimensions (e.g. B, T) are kept; inputs are (..., H, W) for label maps and (..., C, H, W)
    for ``extra``.
    """
    parts = []
    ref = next(x for x in (semantic, instance) if x is not None) if (semantic is not None or instance is not None) else None
    lead = ref.shape[:-2] if ref is not None else extra.shape[:-3]  # type: ignore[union-attr]
    cfg = config.input
    if cfg.num_classes > 0:
        if semantic is None:
            raise ValueError("this config needs semantic labels")
        parts.append(one_hot_labels(semantic.reshape(-1, *semantic.shape[-2:]), cfg.num_classes, cfg.ignore_label))
    if cfg.use_instance:
        if instance is None:
            raise ValueError("this config needs instance maps")
        parts.append(instance_boundaries(instance.reshape(-1, *instance.shape[-2:])))
    if cfg.extra_channels > 0:
        if extra is None:
            raise ValueError(f"this config needs {cfg.extra_channels} extra source channels")
        parts.append(extra.reshape(-1, *extra.shape[-3:]).float())
    source = torch.cat(parts, dim=1)
    return source.reshape(*lead, *source.shape[1:])


def frame_background_mask(config: ModelConfig, semantic: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Background mask for (..., H, W) labels; all ones when there are no labels or no fg prior."""
    if semantic is None or not config.generator.use_fg_prior:
        return torch.ones((*like.shape[:-3], 1, *like.shape[-2:]), device=like.device, dtype=like.dtype)
    flat = background_mask(semantic.reshape(-1, *semantic.shape[-2:]), config.generator.foreground_classes)
    return flat.reshape(*semantic.shape[:-2], 1, *semantic.shape[-2:]).to(like.dtype)


def reference_backward_flows(batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Reference flows in the generator's convention: ((B, T-1, 2, H, W) backward flows, confidences).

    Entry t-1 is the flow that warps frame t-1 onto frame t, on frame t's grid. Returns (None, None)
    when the batch has no flow.
    """
    confidence = batch.get("flow_confidence")
    if confidence is None and "occlusion" in batch:
        confidence = 1.0 - batch["occlusion"].float()
    if "flow_backward" in batch:
        return batch["flow_backward"].float(), None if confidence is None else confidence.float()
    if "flow" not in batch:
        return None, None
    forward = batch["flow"].float()
    b, n = forward.shape[:2]
    flat = forward.reshape(b * n, *forward.shape[2:])
    backward = forward_to_backward_flow(flat)
    conf = None
    if confidence is not None:
        conf = warp(confidence.float().reshape(b * n, *confidence.shape[2:]), backward).reshape(b, n, 1, *flat.shape[-2:])
    return backward.reshape(forward.shape), conf
