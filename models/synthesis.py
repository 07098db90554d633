"""Turning a trained generator and a stream of source frames into video frames (uint8 RGB), any length.

Shared by the `synthesize` command, the training review grid and evaluation, so all three show exactly
what the model makes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

from models.vid2vid.config import ModelConfig
from models.vid2vid.generator import Vid2VidGenerator
from models.vid2vid.inference import FirstFrame, synthesize

# Names users may write in a label remap besides the Cityscapes names ("tree=building").
LABEL_ALIASES = {"tree": "vegetation", "trees": "vegetation", "people": "person", "cars": "car"}


def label_id(name: str) -> int:
    """A Cityscapes train id from a class name (or alias, or a number)."""
    from cityscapesscripts.helpers.labels import name2label

    if name.strip().isdigit():
        return int(name)
    key = LABEL_ALIASES.get(name.strip().lower(), name.strip().lower())
    label = name2label.get(key)
    if label is None or not 0 <= label.trainId < 255:
        known = sorted(n for n, lab in name2label.items() if 0 <= lab.trainId < 255)
        raise ValueError(f"unknown label {name!r} in the remap; use a train id or one of {known}")
    return int(label.trainId)


def parse_remap(spec: str | None) -> dict[int, int]:
    """"tree=building,car=bus" -> {8: 2, 13: 15}."""
    if not spec:
        return {}
    mapping = {}
    for pair in spec.split(","):
        if "=" not in pair:
            raise ValueError(f"remap entry {pair!r} must look like source=target, e.g. tree=building")
        old, new = pair.split("=", 1)
        mapping[label_id(old)] = label_id(new)
    return mapping


@functools.lru_cache(maxsize=1)
def cityscapes_palette() -> np.ndarray:
    """256×3 uint8 colours of Cityscapes train ids (ignore and unknown ids black)."""
    from cityscapesscripts.helpers.labels import trainId2label

    palette = np.zeros((256, 3), np.uint8)
    for train_id, label in trainId2label.items():
        if 0 <= train_id < 255:
            palette[train_id] = label.color
    return palette


def colorize(labels: np.ndarray) -> np.ndarray:
    return cityscapes_palette()[labels]


def source_stages(config: ModelConfig, has_stage: Callable[[str], bool]) -> tuple[list[str], str | None]:
    """(stages to read for synthesis, the stage feeding the extra channels): rgb, the labels the config
    needs, and sketch or pose (whichever the clip has) for configs with extra source channels."""
    stages = ["rgb"]
    if config.input.num_classes > 0:
        stages.append("semantic")
    if config.input.use_instance:
        stages.append("instance")
    extra = None
    if config.input.extra_channels > 0:
        extra = next((s for s in ("sketch", "pose") if has_stage(s)), "sketch")
        stages.append(extra)
    return stages, extra


def source_picture(frame: Mapping[str, np.ndarray], extra_stage: str | None) -> np.ndarray:
    """What a person should see as the model's input: coloured labels, else the sketch/pose rendering."""
    if "semantic" in frame:
        return colorize(frame["semantic"])
    if extra_stage and extra_stage in frame:
        return frame[extra_stage]
    return np.zeros_like(frame["rgb"])


def with_extra(frames: Iterable[dict[str, np.ndarray]], extra_stage: str | None) -> Iterator[dict[str, np.ndarray]]:
    """Name the sketch/pose frames ``extra``, as the generator's inputs call them."""
    for frame in frames:
        if extra_stage:
            frame["extra"] = frame[extra_stage]
        yield frame


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> H×W×3 uint8."""
    return ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def synthesize_frames(
    generator: Vid2VidGenerator,
    frames: Iterable[Mapping[str, np.ndarray]],
    *,
    first_frame: FirstFrame = "zeros",
    label_map: Mapping[int, int] | None = None,
    feature_sampler=None,  # noqa: ANN001 - models.vid2vid.multimodal.InstanceFeatureSampler
    single_frame_generator: Vid2VidGenerator | None = None,
) -> Iterator[np.ndarray]:
    """Synthesized RGB frames for source frames with ``semantic``/``instance`` (and ``rgb`` for a real first frame)."""
    first_rgb: list[np.ndarray] = []

    def inputs() -> Iterator[dict[str, torch.Tensor]]:
        for frame in frames:
            if not first_rgb and "rgb" in frame:
                first_rgb.append(frame["rgb"])
            item = {}
            if "semantic" in frame:
                item["semantic"] = torch.from_numpy(frame["semantic"].astype(np.int64))
            if "instance" in frame:
                item["instance"] = torch.from_numpy(frame["instance"].astype(np.int64))
            if "extra" in frame:
                item["extra"] = torch.from_numpy(frame["extra"]).permute(2, 0, 1).float().div(127.5).sub(1)
            yield item

    source = inputs()
    first_image = None
    if first_frame == "real":
        first = next(source)
        if not first_rgb:
            raise ValueError("first_frame='real' needs the clip's rgb frames")
        first_image = torch.from_numpy(first_rgb[0]).permute(2, 0, 1).float().div(127.5).sub(1).unsqueeze(0)
        source = _chain(first, source)
    for out in synthesize(generator, source, first_frame=first_frame, first_image=first_image, label_map=label_map,
                          feature_sampler=feature_sampler, single_frame_generator=single_frame_generator):
        yield to_uint8(out["image"])


def _chain(first: dict, rest: Iterator[dict]) -> Iterator[dict]:
    yield first
    yield from rest
