"""Glue from a trained model and a dataset clip to mp4 files: the synthesized video and a side-by-side
(source | synthesized | real) review video. Frames stream through; memory does not grow with length."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Literal

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from models.metrics.lossless import LosslessWriter
from models.synthesis import clip_stages, feature_sampler, source_picture, synthesize_frames
from models.vid2vid.checkpoint import LoadedModel, load_generator, load_model
from models.vid2vid.inference import seed_frames
from models.vid2vid.official_import import load_single_frame
from storage.clip_reader import iter_clip_frames
from storage.dataset import require_label_spaces, require_stage_shards
from storage.frame_folder import FrameFolderWriter
from storage.layout import DatasetLayout
from storage.manifest import read_manifest
from storage.video import VideoWriter

FirstFrameChoice = Literal["real", "zeros", "single"]


class SynthesizedClip(BaseModel):
    clip_id: str
    video: str
    lossless: str | None = None  # bit-exact copy of the synthesized frames (FFV1), when one was written
    frames_dir: str | None = None  # one lossless PNG per frame, when asked for
    seed_frames: int = 0  # leading frames given, not generated from the model's own previous outputs
    side_by_side: str | None
    frames: int
    seconds: float
    frames_per_second: float


def render_clip(
    model: str | Path | LoadedModel,
    layout: DatasetLayout,
    clip_id: str,
    out: str | Path,
    *,
    side_by_side: str | Path | None = None,
    label_map: Mapping[int, int] | None = None,
    seed: int = 0,
    first_frame: FirstFrameChoice = "zeros",
    single_checkpoint: str | Path | None = None,
    limit: int | None = None,
    lossless: str | Path | None = None,
    frames_dir: str | Path | None = None,
) -> SynthesizedClip:
    """``lossless``: also write the synthesized frames bit-exact there (FFV1), for scoring; ``frames_dir``: one
    PNG per frame there (placed as a whole at the end, nothing on failure). ``single_checkpoint`` defaults to
    the first-frame generator an imported official model carries. ``model``: a file, or a model loaded once
    for every clip of a run (``load_model``)."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    generator, config, model_path = loaded.generator, loaded.config, loaded.path
    single = None
    if first_frame == "single":
        single = load_generator(single_checkpoint)[0] if single_checkpoint else load_single_frame(model_path)
        if single is None:
            raise ValueError(f"--first-frame single needs a frame-by-frame model: {model_path} carries none "
                             "(import it with --single-frame), so name one with --single-checkpoint")
    sampler = feature_sampler(loaded, seed=seed)
    record = next((r for r in read_manifest(layout) if r.clip_id == clip_id), None)
    fps = (record.fps if record is not None else 0.0) or 17.0
    size = (config.input.width, config.input.height)
    stages = clip_stages(config)
    require_stage_shards(layout, stages, None, f"model {model_path} reads", [clip_id])
    require_label_spaces(layout, config.input.label_spaces, None, f"model {model_path} reads", [clip_id])
    current: list[dict[str, np.ndarray]] = []

    def remember(frames):  # noqa: ANN001, ANN202 - keeps only the current frame for the side-by-side
        for frame in frames:
            current[:] = [frame]
            yield frame

    started = time.perf_counter()
    count = 0
    mode = "model" if first_frame == "single" else first_frame
    total = record.n_frames if record is not None else 0
    total = min(total, limit) if limit is not None else total
    with VideoWriter(out, fps) as video, (VideoWriter(side_by_side, fps) if side_by_side else nullcontext()) as review, \
            (LosslessWriter(lossless, fps) if lossless else nullcontext()) as exact, \
            (FrameFolderWriter(frames_dir, total) if frames_dir else nullcontext()) as pngs:
        frames = remember(iter_clip_frames(layout, clip_id, stages, size, limit))
        for fake in synthesize_frames(generator, frames, first_frame=mode, label_map=label_map,
                                      sampler=sampler, single_frame_generator=single):
            video.write(fake)
            if exact is not None:
                exact.write(fake)
            if pngs is not None:
                pngs.write(fake)
            if review is not None:
                frame = current[0]
                review.write(np.concatenate([source_picture(config, frame), fake, frame["rgb"]], axis=1))
            count += 1
    seconds = time.perf_counter() - started
    return SynthesizedClip(clip_id=clip_id, video=str(out), side_by_side=str(side_by_side) if side_by_side else None,
                           lossless=str(lossless) if lossless else None,
                           frames_dir=str(frames_dir) if frames_dir else None,
                           seed_frames=min(count, seed_frames(config, mode)),
                           frames=count, seconds=seconds, frames_per_second=count / seconds if seconds else 0.0)


@task(name="synthesize-clip", task_run_name="synthesize {clip_id}", cache_policy=NO_CACHE)
def synthesize_clip_task(model_path: str, layout: DatasetLayout, clip_id: str, out: str,
                         side_by_side: str | None = None, label_map: dict[int, int] | None = None, seed: int = 0,
                         first_frame: FirstFrameChoice = "zeros", single_checkpoint: str | None = None,
                         frames_dir: str | None = None) -> SynthesizedClip:
    return render_clip(model_path, layout, clip_id, out, side_by_side=side_by_side,
                       label_map=label_map, seed=seed, first_frame=first_frame, single_checkpoint=single_checkpoint,
                       frames_dir=frames_dir)
