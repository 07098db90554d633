"""Future video prediction, the paper's two steps: predict the future label maps, then let vid2vid turn
them into frames. Everything streams: a clip is read frame by frame, the predictor keeps K frames and
vid2vid its L previous outputs, so any horizon costs the same memory.

``forecast_clip`` yields one :class:`Step` per frame — the observed ones first (horizon <= 0), then the
predicted ones (horizon 1..N) with the real maps and frames beside them where the clip has them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.synthesis import colorize, synthesize_frames
from models.vid2vid.checkpoint import load_generator
from models.vid2vid.generator import Vid2VidGenerator
from models.vid2vid.warp import warp
from storage.clip_reader import iter_clip_frames
from storage.layout import DatasetLayout, check_name
from storage.manifest import ClipRecord, read_manifest

from .config import PredictorConfig
from .rollout import Forecaster, History, MapFrame, observed_frames


@dataclass
class Step:
    horizon: int  # <= 0: observed frame (0 = the last one); 1..N: predicted
    maps: MapFrame  # observed or predicted, on the predictor's grid
    real_semantic: np.ndarray | None  # the clip's own map at this frame (predictor grid), None past its end
    real_rgb: np.ndarray | None  # the clip's own frame (video size), None past its end
    last_rgb: np.ndarray  # the last observed frame (video size): what pixel baselines carry forward


def clip_record(layout: DatasetLayout, clip_id: str) -> ClipRecord:
    check_name(clip_id, "clip")
    records = {r.clip_id: r for r in read_manifest(layout)}
    if not records:
        raise FileNotFoundError(f"dataset {layout.dataset!r} has no manifest at {layout.manifest_path}")
    record = records.get(clip_id)
    if record is None:
        raise ValueError(f"dataset {layout.dataset!r} has no clip {clip_id!r}; clips: {sorted(records)[:20]}")
    if record.status != "ok":
        raise ValueError(f"clip {clip_id!r} is quarantined: {record.error}")
    return record


def check_request(record: ClipRecord, observed: int, future: int) -> None:
    """Refuse requests that cannot be met, naming the clip and the numbers."""
    if observed < 1:
        raise ValueError(f"--observed must be at least 1, got {observed}")
    if future < 1:
        raise ValueError(f"--future must be at least 1, got {future}")
    if observed > record.n_frames:
        raise ValueError(f"clip {record.clip_id!r} has {record.n_frames} frames; --observed {observed} asks for more "
                         f"observed frames than it has")


def validate_request(layout: DatasetLayout, clip_id: str, observed: int, future: int, vid2vid_path: str | Path,
                     predictor_path: str | Path) -> ClipRecord:
    """Everything about a prediction request that can be checked before a frame is read."""
    from .checkpoint import load_predictor, require_vid2vid

    record = clip_record(layout, clip_id)
    check_request(record, observed, future)
    require_vid2vid(vid2vid_path)
    load_predictor(predictor_path)
    return record


def map_stages(config: PredictorConfig) -> tuple[str, ...]:
    return ("semantic", "instance", "flow") if config.input.use_instance else ("semantic", "flow")


def forecast_clip(forecaster: Forecaster, config: PredictorConfig, layout: DatasetLayout, clip_id: str,
                  observed: int, future: int, video_size: tuple[int, int]) -> Iterator[Step]:
    maps = iter_clip_frames(layout, clip_id, map_stages(config), config.size)
    frames = iter_clip_frames(layout, clip_id, ("rgb",), video_size)
    history = History(config)
    last_rgb = None
    for index, frame in enumerate(observed_frames(itertools.islice(maps, observed))):
        last_rgb = next(frames)["rgb"]
        history.push(frame)
        yield Step(index - observed + 1, frame, frame.semantic[0].numpy(), last_rgb, last_rgb)
    if last_rgb is None:
        raise ValueError(f"clip {clip_id!r} has no frames to observe")
    for horizon in range(1, future + 1):
        frame = forecaster.next(history)
        history.push(frame)
        real, rgb = next(maps, None), next(frames, None)
        yield Step(horizon, frame, None if real is None else real["semantic"], None if rgb is None else rgb["rgb"],
                   last_rgb)


def resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an id map to (width, height)."""
    height, width = ids.shape[-2:]
    if (width, height) == size:
        return ids
    ys = (np.arange(size[1]) * height // size[1])[:, None]
    xs = (np.arange(size[0]) * width // size[0])[None, :]
    return ids[..., ys, xs]


def carried_frame(step: Step) -> np.ndarray:
    """Pixel baselines: the last observed frame moved by the composed flow of the predicted maps."""
    if step.maps.to_anchor is None:
        return step.last_rgb
    height, width = step.last_rgb.shape[:2]
    flow = step.maps.to_anchor
    scale = torch.tensor([width / flow.shape[-1], height / flow.shape[-2]]).view(1, 2, 1, 1)
    flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False) * scale
    image = torch.from_numpy(step.last_rgb).permute(2, 0, 1)[None].float()
    return warp(image, flow)[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def vid2vid_size(generator: Vid2VidGenerator) -> tuple[int, int]:
    return generator.config.input.width, generator.config.input.height


def load_vid2vid(path: str | Path) -> Vid2VidGenerator:
    generator, _ = load_generator(path)
    if generator.feat_nc:
        raise ValueError(f"{path} is a multimodal vid2vid model; prediction drives single-mode models only")
    return generator


def synthesized(generator: Vid2VidGenerator, steps: Iterator[Step]) -> Iterator[tuple[Step, np.ndarray]]:
    """vid2vid frames for the steps' maps (observed, then predicted), first frame the real one."""
    size = vid2vid_size(generator)
    current: list[Step] = []

    def sources() -> Iterator[dict[str, np.ndarray]]:
        for step in steps:
            current[:] = [step]
            frame = {"semantic": resize_ids(step.maps.semantic[0].numpy(), size), "rgb": step.last_rgb}
            if step.maps.instance is not None:
                frame["instance"] = resize_ids(step.maps.instance[0].numpy(), size)
            yield frame

    for fake in synthesize_frames(generator, sources(), first_frame="real"):
        yield current[0], fake


def side_by_side(step: Step, fake: np.ndarray) -> np.ndarray:
    """observed (frozen at the last observed frame once prediction starts) | predicted | real (black past the end)."""
    real = step.real_rgb if step.real_rgb is not None else np.zeros_like(fake)
    return np.concatenate([step.last_rgb, fake, real], axis=1)


def mask_pair(step: Step, size: tuple[int, int]) -> np.ndarray:
    """predicted map | real map, coloured, at the video size."""
    predicted = colorize(resize_ids(step.maps.semantic[0].numpy().astype(np.uint8), size))
    real = (colorize(resize_ids(step.real_semantic.astype(np.uint8), size)) if step.real_semantic is not None
            else np.zeros_like(predicted))
    return np.concatenate([predicted, real], axis=1)


@dataclass
class PredictionVideo:
    clip_id: str
    video: str  # observed | predicted | real
    masks: str  # predicted map | real map
    observed: int
    future: int
    frames: int
    seconds: float
    frames_per_second: float


def render_prediction(vid2vid_path: str | Path, predictor_path: str | Path, layout: DatasetLayout, clip_id: str,
                      observed: int, future: int, out: str | Path) -> PredictionVideo:
    """Write ``out`` (observed | predicted | real) and ``<out>.masks.mp4`` (predicted | real maps)."""
    import time

    from storage.video import VideoWriter

    from .checkpoint import load_predictor
    from .rollout import PredictorForecaster

    record = validate_request(layout, clip_id, observed, future, vid2vid_path, predictor_path)
    model = load_predictor(predictor_path)
    generator = load_vid2vid(vid2vid_path)
    size = vid2vid_size(generator)
    out = Path(out)
    masks = out.with_name(out.stem + ".masks.mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    started, count = time.perf_counter(), 0
    steps = forecast_clip(PredictorForecaster(model), model.config, layout, clip_id, observed, future, size)
    fps = record.fps or 17.0
    with VideoWriter(out, fps) as video, VideoWriter(masks, fps) as mask_video:
        for step, fake in synthesized(generator, steps):
            video.write(side_by_side(step, fake))
            mask_video.write(mask_pair(step, size))
            count += 1
    seconds = time.perf_counter() - started
    return PredictionVideo(clip_id, str(out), str(masks), observed, future, count, seconds, count / seconds)
