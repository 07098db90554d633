"""The training batch contract, and the encoders that turn its stage frames into network inputs.

A batch is a ``dict[str, Tensor]``; T frames of one clip window per sample (the storage-side dataset
produces it, the trainer consumes it). Besides the real frames and the reference flow it holds one key per
stage the model config declares (``ModelConfig.data_stages``): the stages feeding ``input.sources`` and,
for a multimodal model, its instance stage. Shapes, with B samples, T frames, H x W pixels:

=================== ======================== ===============================================================
key                 shape / dtype            meaning
=================== ======================== ===============================================================
``<label stage>``   (B, T, H, W) integer     a stage read as ids: the ``one_hot`` input's class ids (e.g.
                                             Cityscapes train ids; the ignore label is an all-zero row),
                                             an ``instance_edges`` input's or the multimodal instance ids.
``<render stage>``  (B, T, C, H, W) float    a ``rendering`` input's picture (sketch, pose) in [-1, 1];
                                             C = the input's declared ``channels``.
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

Integer tensors are label maps everywhere (resized by nearest neighbour); floating ones are pictures.

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

from .config import DensePoseIUV, FaceEdgeDistance, Input, InstanceEdges, ModelConfig, OneHotLabels, Rendering
from .warp import forward_to_backward_flow, warp

Batch = dict[str, torch.Tensor]


def stage_shape(config: ModelConfig, stage: str, lead: tuple[int, ...], h: int, w: int) -> tuple[int, ...]:
    """The shape a declared stage has in a batch: ids (lead, H, W), or a rendering (lead, C, H, W)."""
    rendering = [s for s in config.input.sources if s.stage == stage and isinstance(s, Rendering)]
    return (*lead, rendering[0].channels, h, w) if rendering else (*lead, h, w)


def validate_batch(batch: Mapping[str, torch.Tensor], config: ModelConfig) -> None:
    """Raise ValueError naming the first key that breaks the contract above."""
    if "image" not in batch:
        raise ValueError("batch needs 'image' (B, T, 3, H, W)")
    image = batch["image"]
    if image.dim() != 5 or image.shape[2] != 3:
        raise ValueError(f"'image' must be (B, T, 3, H, W), got {tuple(image.shape)}")
    b, t, _, h, w = image.shape
    for stage in config.data_stages:
        shape = stage_shape(config, stage, (b, t), h, w)
        if stage not in batch:
            raise ValueError(f"batch needs {stage!r} {shape}: the model config declares an input fed by that stage")
        if tuple(batch[stage].shape) != shape:
            raise ValueError(f"batch[{stage!r}] must have shape {shape}, got {tuple(batch[stage].shape)}")
        if (len(shape) == 4) == batch[stage].is_floating_point():
            kind = "integer ids" if len(shape) == 4 else "a float rendering in [-1, 1]"
            raise ValueError(f"batch[{stage!r}] must hold {kind}")
    for key in ("flow", "flow_backward", "flow_confidence", "occlusion"):
        channels = 2 if key.startswith("flow") and key != "flow_confidence" else 1
        if key in batch and tuple(batch[key].shape) != (b, t - 1, channels, h, w):
            raise ValueError(f"batch[{key!r}] must have shape {(b, t - 1, channels, h, w)}, "
                             f"got {tuple(batch[key].shape)}")


def class_labels(config: ModelConfig, frames: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """The class ids of the declared ``one_hot`` input (fg/bg prior, remaps, multimodal classes), if any."""
    labels = config.input.labels
    return None if labels is None else frames.get(labels.stage)


def instance_ids(config: ModelConfig, frames: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """The instance ids encoder E pools over (multimodal models only)."""
    return frames.get(config.multimodal.instance_stage) if config.multimodal.enabled else None


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
    # scattered straight into float planes: no int64 one-hot, permute copy or mask product (~5% of a frame)
    onehot = torch.zeros((labels.shape[0], num_classes, *labels.shape[1:]), dtype=torch.get_default_dtype(), device=labels.device)
    return onehot.scatter_(1, torch.where(valid, labels, 0).unsqueeze(1), valid.unsqueeze(1).to(torch.get_default_dtype()))


def instance_boundaries(instance: torch.Tensor) -> torch.Tensor:
    """(N, H, W) ids -> (N, 1, H, W) float, 1 on both sides of every edge between different ids."""
    edge = torch.zeros(instance.shape, dtype=torch.bool, device=instance.device)
    dx = instance[:, :, 1:] != instance[:, :, :-1]
    dy = instance[:, 1:, :] != instance[:, :-1, :]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    return edge.unsqueeze(1).to(torch.get_default_dtype())


def background_mask(semantic: torch.Tensor, foreground_classes: Sequence[int]) -> torch.Tensor:
    """m_B of Eq. 9: (N, H, W) ids -> (N, 1, H, W), 1 on background (incl. ignore), 0 on foreground."""
    fg = torch.zeros(semantic.shape, dtype=torch.bool, device=semantic.device)
    for cls in foreground_classes:
        fg |= semantic == cls
    return (~fg).unsqueeze(1).to(torch.get_default_dtype())


def densepose_iuv(value: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) V, U, I in [-1, 1] (x/127.5 - 1) -> the official pose loader's values: V and U as they
    are, the part index I (0..24) re-scaled so that 24 -> 1: ((i/2 + 1/2)*255/24 - 1/2)*2."""
    part = ((value[:, 2:3] * 0.5 + 0.5) * 255 / 24 - 0.5) / 0.5
    return torch.cat([value[:, :2], part], dim=1)


def encode_input(spec: Input, value: torch.Tensor) -> torch.Tensor:
    """One declared input's frames -> (N, channels, H, W): ids (N, H, W) or a rendering (N, C, H, W) in
    [-1, 1] (uint8 payloads as x/127.5 - 1, storage/dataset.py)."""
    if isinstance(spec, OneHotLabels):
        return one_hot_labels(value, spec.num_classes, spec.ignore_label)
    if isinstance(spec, InstanceEdges):
        return instance_boundaries(value)
    if isinstance(spec, Rendering):
        if value.shape[1] != spec.channels:
            raise ValueError(f"input {spec.name!r} declares {spec.channels} channels; stage {spec.stage!r} "
                             f"gave {value.shape[1]}")
        if isinstance(spec, FaceEdgeDistance):  # the official face loader keeps x/255 in [0, 1]
            return (value.to(torch.get_default_dtype()) + 1.0) * 0.5
        if isinstance(spec, DensePoseIUV):
            return densepose_iuv(value.to(torch.get_default_dtype()))
        return value.to(torch.get_default_dtype())
    raise TypeError(f"no encoder for input {spec.name!r} ({type(spec).__name__})")


def encode_source(config: ModelConfig, frames: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per-frame source s_t: the declared inputs, encoded and concatenated in order, (..., C, H, W).

    ``frames`` maps each stage to ids (..., H, W) or a rendering (..., C, H, W); leading dimensions
    (e.g. B, T) are kept.
    """
    parts, lead = [], None
    for spec in config.input.sources:
        value = frames.get(spec.stage)
        if value is None:
            raise ValueError(f"input {spec.name!r} needs frames of the {spec.stage!r} stage")
        dims = 3 if isinstance(spec, Rendering) else 2
        lead = value.shape[:-dims]
        parts.append(encode_input(spec, value.reshape(-1, *value.shape[-dims:])))
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
        confidence = 1.0 - batch["occlusion"].to(torch.get_default_dtype())
    if "flow_backward" in batch:
        return batch["flow_backward"].to(torch.get_default_dtype()), None if confidence is None else confidence.to(torch.get_default_dtype())
    if "flow" not in batch:
        return None, None
    forward = batch["flow"].to(torch.get_default_dtype())
    b, n = forward.shape[:2]
    flat = forward.reshape(b * n, *forward.shape[2:])
    backward = forward_to_backward_flow(flat)
    conf = None
    if confidence is not None:
        conf = warp(confidence.to(torch.get_default_dtype()).reshape(b * n, *confidence.shape[2:]), backward).reshape(b, n, 1, *flat.shape[-2:])
    return backward.reshape(forward.shape), conf
