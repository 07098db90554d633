"""Turning a trained generator and a stream of source frames into video frames (uint8 RGB), any length.

Shared by the `synthesize` command, the training review grid and evaluation, so all three show exactly
what the model makes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import torch

from models.vid2vid.checkpoint import LoadedModel, load_multimodal
from models.vid2vid.config import ModelConfig
from models.vid2vid.generator import Vid2VidGenerator
from models.vid2vid.inference import FirstFrame, seed_frames, synthesize
from models.vid2vid.multimodal import InstanceFeatureSampler
from storage.dataset import frames_tensor

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


def clip_stages(config: ModelConfig) -> list[str]:
    """The stages synthesis reads for a model: rgb (first frame, review), then the declared ones."""
    return ["rgb", *config.data_stages]


def source_picture(config: ModelConfig, frame: Mapping[str, np.ndarray]) -> np.ndarray:
    """What a person should see as the model's input: the coloured class labels of the one_hot input,
    else the first rendering input (sketch, pose), else black."""
    labels = config.input.labels
    if labels is not None and labels.stage in frame:
        return colorize(frame[labels.stage])
    for spec in config.input.sources:
        picture = frame.get(spec.stage)
        if picture is not None and picture.ndim == 3 and picture.shape[-1] == 3:
            return picture
    return np.zeros_like(frame["rgb"])


def feature_sampler(model: str | os.PathLike[str] | LoadedModel, generator: Vid2VidGenerator | None = None,
                    seed: int = 0) -> InstanceFeatureSampler | None:
    """The seeded sampler of a multimodal model's per-class feature mixtures (None for other models): the
    same seed gives the same video, another seed another plausible one. ``model``: a loaded model (its
    mixtures already read), or a file with its ``generator``."""
    generator = model.generator if isinstance(model, LoadedModel) else generator
    if generator is None or not generator.feat_nc:
        return None
    gmm = model.gmm if isinstance(model, LoadedModel) else load_multimodal(model)[1]
    if gmm is None:
        path = model.path if isinstance(model, LoadedModel) else model
        raise ValueError(f"{path} is a multimodal model but holds no fitted feature mixtures: the train flow "
                         "fits them after training (task fit-feature-mixtures); rerun it on this model")
    return InstanceFeatureSampler(gmm, seed=seed)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> H×W×3 uint8."""
    return ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def synthesize_frames(
    generator: Vid2VidGenerator,
    frames: Iterable[Mapping[str, np.ndarray]],
    *,
    first_frame: FirstFrame = "zeros",
    label_map: Mapping[int, int] | None = None,
    sampler: InstanceFeatureSampler | None = None,
    single_frame_generator: Vid2VidGenerator | None = None,
) -> Iterator[np.ndarray]:
    """Synthesized RGB frames for ``{stage: payload}`` frames holding the model's declared stages (and
    ``rgb`` for real first frames: frame 0, or frames 0..L-1 of a model with official semantics); payloads
    become tensors by the training dataset's rule."""
    stages = generator.config.data_stages
    given = max(1, seed_frames(generator.config, first_frame)) if first_frame == "real" else 0

    def inputs() -> Iterator[dict[str, torch.Tensor]]:
        for index, frame in enumerate(frames):
            tensors = {stage: frames_tensor(frame[stage][None])[0] for stage in stages if stage in frame}
            if index < given:
                if "rgb" not in frame:
                    raise ValueError(f"first_frame='real' needs the clip's rgb frames (the first {given})")
                tensors["real"] = frames_tensor(np.asarray(frame["rgb"])[None])[0]
            yield tensors

    for out in synthesize(generator, inputs(), first_frame=first_frame, label_map=label_map,
                          feature_sampler=sampler, single_frame_generator=single_frame_generator):
        yield to_uint8(out["image"])
