"""Sequence synthesis of any length with constant memory: a generator over source frames.

Only the last L+1 encoded sources and the last L outputs are kept (``collections.deque``), and nothing
is recorded for autograd (``torch.inference_mode``), so memory does not grow with the video's length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from .batch import class_labels, encode_source, frame_background_mask, instance_ids, remap_labels, stage_shape
from .config import ModelConfig
from .generator import Vid2VidGenerator

FirstFrame = Literal["zeros", "real", "model"]


def optimize_for_inference(module: nn.Module, channels_last: bool = False) -> nn.Module:
    """eval mode, no grads; optionally channels-last weights (off by default). Measured on NVIDIA's street
    generator at 512x256 (2-core CPU, benchmarks/model.py --official-code): channels-last ran at 0.92x the
    default's speed, and its kernels round differently, so frames drift from the official ones (0.05 by the
    second frame); the default reproduces them bit-exactly. No conv+BN folding: released models normalise
    each image by its own batch statistics, which a folded convolution cannot reproduce."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return module


def _batched(x: torch.Tensor | None, dims: int) -> torch.Tensor | None:
    if x is None:
        return None
    return x if x.dim() > dims else x.unsqueeze(0)


def stage_dims(config: ModelConfig, stage: str) -> int:
    """Dimensions of one unbatched frame of a declared stage: 2 for ids, 3 for a rendering."""
    return len(stage_shape(config, stage, (), 1, 1))


@torch.inference_mode()
def synthesize(
    generator: Vid2VidGenerator,
    frames: Iterable[Mapping[str, torch.Tensor]],
    *,
    first_frame: FirstFrame = "zeros",
    first_image: torch.Tensor | None = None,
    single_frame_generator: Vid2VidGenerator | None = None,
    label_map: Mapping[int, int] | None = None,
    feature_sampler: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    n_scales: int | None = None,
    keep: Sequence[str] = ("image",),
    device: torch.device | str | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield ``{key: tensor}`` (``keep`` keys of the generator's output dict) for each source frame.

    ``frames`` yields ``{stage: tensor}`` for every stage the config declares (``config.data_stages``):
    ids (B, H, W) or renderings (B, C, H, W) in [-1, 1] (the batch dim may be left out). The first frame
    is ``first_image`` itself ("real"), generated from zero previous frames ("zeros"), or made by a
    frame-by-frame ``single_frame_generator`` ("model"). ``label_map`` remaps the class ids of the
    one_hot input (e.g. {8: 2}: trees become buildings); ``feature_sampler(labels, instance)`` gives the
    multimodal features.
    """
    config = generator.config
    L = generator.n_prev
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    labels = config.input.labels
    sources: deque[torch.Tensor] = deque(maxlen=L + 1)
    outputs: deque[torch.Tensor] = deque(maxlen=max(L, 1))
    for index, frame in enumerate(frames):
        batched = {stage: _batched(frame[stage], stage_dims(config, stage)).to(device)  # type: ignore[union-attr]
                   for stage in config.data_stages if stage in frame}
        if labels is not None and labels.stage in batched:
            batched[labels.stage] = remap_labels(batched[labels.stage], label_map)
        source = encode_source(config, batched)
        semantic = class_labels(config, batched)
        bg = frame_background_mask(config, semantic, source)
        features = None
        if generator.feat_nc:
            instance = instance_ids(config, batched)
            if feature_sampler is None or instance is None:
                raise ValueError("a multimodal generator needs a feature_sampler and instance maps "
                                 f"(stage {config.multimodal.instance_stage!r})")
            features = feature_sampler(semantic if semantic is not None else instance * 0, instance)
        while len(sources) < L:  # pad the start by repeating the first source frame
            sources.append(source)
        sources.append(source)
        if index == 0 and L > 0:
            out = _first(generator, first_frame, first_image, single_frame_generator, source, bg, features, outputs, L, n_scales)
        else:
            out = generator(torch.stack(tuple(sources), 1), torch.stack(tuple(outputs), 1) if L else None, bg, features, n_scales)
        outputs.append(out["image"])
        while L and len(outputs) < L:
            outputs.appendleft(out["image"])
        yield {key: out[key] for key in keep if key in out}


def _first(generator, first_frame, first_image, single, source, bg, features, outputs, L, n_scales):
    if first_frame == "real":
        if first_image is None:
            raise ValueError("first_frame='real' needs first_image (B, 3, H, W) in [-1, 1]")
        image = _batched(first_image, 3).to(source.device)  # type: ignore[union-attr]
        return {"image": image}
    if first_frame == "model":
        if single is None:
            raise ValueError("first_frame='model' needs a single_frame_generator (n_prev = 0)")
        return single(source.unsqueeze(1), None, bg, features if single.feat_nc else None, n_scales)
    if first_frame == "zeros":
        zeros = torch.zeros(source.shape[0], L, 3, *source.shape[-2:], device=source.device, dtype=source.dtype)
        return generator(source.unsqueeze(1).expand(-1, L + 1, -1, -1, -1), zeros, bg, features, n_scales)
    raise ValueError(f"first_frame must be 'zeros', 'real' or 'model', got {first_frame!r}")
