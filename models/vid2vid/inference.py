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
from .generator import ScaleHistory, Vid2VidGenerator

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


def official_semantics(config: ModelConfig) -> bool:
    """Whether a model follows NVIDIA's released code at test time (``generator.composition: official``, which
    every imported model and official preset has): per-scale recurrence, L seed frames (see ``synthesize``)."""
    return config.generator.composition == "official"


def seed_frames(config: ModelConfig, first_frame: FirstFrame) -> int:
    """How many leading output frames are not made by the video generator from its own previous outputs:
    given real frames, single-frame generator frames, or (official, "zeros") the zero frames it starts from."""
    if official_semantics(config):
        return config.generator.n_prev
    return 1 if first_frame in ("real", "model") and config.generator.n_prev else 0


def _per_image(generator: nn.Module) -> bool:
    """Batch norm normalising with the current batch's statistics (per-image test statistics, or a module left
    in training mode): a batch of several clips must then run one clip at a time, as the official test does."""
    return any(isinstance(m, nn.BatchNorm2d) and (m.training or getattr(m, "batch_stats_in_eval", False))
               for m in generator.modules())


def _run(generator: Vid2VidGenerator, per_image: bool, *args: object, **kwargs: object) -> dict:
    """``generator(*args, **kwargs)``, one batch element at a time when ``per_image`` and B > 1."""
    batch = args[0].shape[0]  # type: ignore[union-attr]
    if not per_image or batch == 1:
        return generator(*args, **kwargs)

    def pick(value: object, i: int) -> object:
        if isinstance(value, torch.Tensor):
            return value[i : i + 1]
        if isinstance(value, (list, tuple)):
            return [pick(v, i) for v in value]
        return value

    outs = [generator(*(pick(a, i) for a in args), **{k: pick(v, i) for k, v in kwargs.items()}) for i in range(batch)]
    merged: dict = {}
    for key, first in outs[0].items():
        if isinstance(first, list):
            merged[key] = [torch.cat([o[key][s] for o in outs]) for s in range(len(first))]
        else:
            merged[key] = torch.cat([o[key] for o in outs])
    return merged


class _Encoded:
    """One source frame, batched and encoded for a generator's config."""

    def __init__(self, config: ModelConfig, frame: Mapping[str, torch.Tensor], device: torch.device,
                 label_map: Mapping[int, int] | None, feature_sampler, feat_nc: int) -> None:  # noqa: ANN001
        labels = config.input.labels
        batched = {stage: _batched(frame[stage], stage_dims(config, stage)).to(device)  # type: ignore[union-attr]
                   for stage in config.data_stages if stage in frame}
        if labels is not None and labels.stage in batched:
            batched[labels.stage] = remap_labels(batched[labels.stage], label_map)
        self.batched = batched
        self.source = encode_source(config, batched)
        semantic = class_labels(config, batched)
        self.background = frame_background_mask(config, semantic, self.source)
        self.features = None
        if feat_nc:
            instance = instance_ids(config, batched)
            if feature_sampler is None or instance is None:
                raise ValueError("a multimodal generator needs a feature_sampler and instance maps "
                                 f"(stage {config.multimodal.instance_stage!r})")
            self.features = feature_sampler(semantic if semantic is not None else instance * 0, instance)
        real = frame.get("real")
        self.real = None if real is None else _batched(real, 3).to(device=device, dtype=self.source.dtype)  # type: ignore[union-attr]


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
    ids (B, H, W) or renderings (B, C, H, W) in [-1, 1] (the batch dim may be left out), and optionally
    ``real``: the real frame (B, 3, H, W) in [-1, 1], read by ``first_frame="real"`` when ``first_image``
    is not given. ``label_map`` remaps the class ids of the one_hot input (e.g. {8: 2}: trees become
    buildings); ``feature_sampler(labels, instance)`` gives the multimodal features.

    Our models (paper semantics): frame 0 is ``first_image`` itself ("real"), generated from zero previous
    frames ("zeros"), or made by a frame-by-frame ``single_frame_generator`` ("model"); the first L source
    frames are padded by repeating frame 0, and the finest outputs are fed back (pooled for coarser scales).

    Official semantics (``official_semantics``: NVIDIA's test.py): frames 0..L-1 are the seeds the recurrence
    starts from and are yielded as they are: the real frames ("real"; ``first_image`` (B, L, 3, H, W) or the
    frames' ``real``), the single-frame generator's frames on their own inputs ("model", ``--use_single_G``),
    or zero frames ("zeros", ``--no_first_img``: frame L is then the raw output, not warped). From frame L
    on every frame is generated from the real source frames t-L..t, and every scale keeps its own L previous
    outputs (``ScaleHistory``). Batch norm with per-image statistics runs a batch one clip at a time.
    """
    if first_frame not in ("zeros", "real", "model"):
        raise ValueError(f"first_frame must be 'zeros', 'real' or 'model', got {first_frame!r}")
    device = torch.device(device) if device is not None else next(generator.parameters()).device
    if official_semantics(generator.config):
        yield from _official(generator, frames, first_frame, first_image, single_frame_generator, label_map,
                             feature_sampler, n_scales, keep, device)
        return
    L = generator.n_prev
    per_image = _per_image(generator)
    sources: deque[torch.Tensor] = deque(maxlen=L + 1)
    outputs: deque[torch.Tensor] = deque(maxlen=max(L, 1))
    for index, frame in enumerate(frames):
        enc = _Encoded(generator.config, frame, device, label_map, feature_sampler, generator.feat_nc)
        source = enc.source
        while len(sources) < L:  # pad the start by repeating the first source frame
            sources.append(source)
        sources.append(source)
        if index == 0 and L > 0:
            out = _first(generator, first_frame, first_image, single_frame_generator, enc, label_map, feature_sampler,
                         L, n_scales, per_image)
        else:
            out = _run(generator, per_image, torch.stack(tuple(sources), 1),
                       torch.stack(tuple(outputs), 1) if L else None, enc.background, enc.features, n_scales)
        outputs.append(out["image"])
        while L and len(outputs) < L:
            outputs.appendleft(out["image"])
        yield {key: out[key] for key in keep if key in out}


def _single(single: Vid2VidGenerator | None, enc: _Encoded, label_map, feature_sampler) -> dict:  # noqa: ANN001
    """The frame-by-frame generator's frame on its own inputs (e.g. the official pix2pixHD G: labels only)."""
    if single is None:
        raise ValueError("first_frame='model' needs a single_frame_generator (n_prev = 0)")
    if single.n_prev:
        raise ValueError(f"the single_frame_generator must be frame-by-frame (n_prev = 0), not n_prev = {single.n_prev}")
    own = _Encoded(single.config, enc.batched, enc.source.device, None, feature_sampler, single.feat_nc)
    features = own.features if single.feat_nc else None
    return _run(single, _per_image(single), own.source.unsqueeze(1), None, own.background, features)


def _real_seed(first_image: torch.Tensor | None, index: int, enc: _Encoded, needed: int) -> torch.Tensor:
    if first_image is not None:
        if needed > 1 or first_image.dim() == 5:
            if first_image.dim() != 5 or first_image.shape[1] < needed:
                raise ValueError(f"first_frame='real' needs first_image (B, {needed}, 3, H, W): the first {needed} "
                                 f"real frames, got shape {tuple(first_image.shape)}")
            image = first_image[:, index]
        else:
            image = _batched(first_image, 3)  # type: ignore[assignment]
        return image.to(device=enc.source.device, dtype=enc.source.dtype)
    if enc.real is None:
        raise ValueError(f"first_frame='real' needs the first {needed} real frame(s): first_image, or 'real' in "
                         f"the first {needed} frames")
    return enc.real


def _first(generator, first_frame, first_image, single, enc, label_map, feature_sampler, L, n_scales, per_image):  # noqa: ANN001, ANN202
    if first_frame == "real":
        return {"image": _real_seed(first_image, 0, enc, 1)}
    if first_frame == "model":
        return _single(single, enc, label_map, feature_sampler)
    source = enc.source
    zeros = torch.zeros(source.shape[0], L, 3, *source.shape[-2:], device=source.device, dtype=source.dtype)
    return _run(generator, per_image, source.unsqueeze(1).expand(-1, L + 1, -1, -1, -1), zeros, enc.background,
                enc.features, n_scales)


def _official(generator, frames, first_frame, first_image, single, label_map, feature_sampler, n_scales, keep,  # noqa: ANN001, ANN202
              device):
    L = generator.n_prev
    active = generator.n_scales if n_scales is None else n_scales
    per_image = _per_image(generator)
    sources: deque[torch.Tensor] = deque(maxlen=L + 1)
    seeds: list[torch.Tensor] = []
    history = ScaleHistory(L, active) if L else None
    for index, frame in enumerate(frames):
        enc = _Encoded(generator.config, frame, device, label_map, feature_sampler, generator.feat_nc)
        sources.append(enc.source)
        if index < L:  # a seed: the official test writes no frame here
            if first_frame == "real":
                seed = {"image": _real_seed(first_image, index, enc, L)}
            elif first_frame == "model":
                seed = _single(single, enc, label_map, feature_sampler)
            else:
                source = enc.source
                seed = {"image": torch.zeros(source.shape[0], 3, *source.shape[-2:], device=device, dtype=source.dtype)}
            seeds.append(seed["image"])
            yield {key: seed[key] for key in keep if key in seed}
            continue
        if history is not None and index == L:
            history.start(torch.stack(seeds, 1))
            seeds.clear()
        out = _run(generator, per_image, torch.stack(tuple(sources), 1),
                   history.previous() if history is not None else None, enc.background, enc.features, active,
                   raw_only=first_frame == "zeros" and index == L, return_pyramid=True)
        if history is not None:
            history.push(out["pyramid"])
        yield {key: out[key] for key in keep if key in out}
