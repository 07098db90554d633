"""Pictures a user reviews after a run: the loss curves and a grid of source | synthesized | real frames."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models.synthesis import clip_stages, feature_sampler, source_picture, synthesize_frames
from models.vid2vid.checkpoint import load_generator
from storage.clip_reader import iter_clip_frames
from storage.layout import DatasetLayout
from storage.manifest import read_manifest


def loss_curve_png(metrics: list[dict], keys: tuple[str, ...] = ("G_total", "D_total", "L1", "G_flow_warp")) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5), dpi=100)
    steps = [m["step"] for m in metrics]
    for key in keys:
        values = [m.get(key) for m in metrics]
        if any(v is not None for v in values):
            axis.plot(steps, values, label=key, marker="." if len(steps) < 30 else None)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.grid(True, alpha=0.3)
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def review_clip(layout: DatasetLayout) -> str:
    """The clip samples are drawn from: the first validation clip, else the first clip."""
    records = [r for r in read_manifest(layout) if r.status == "ok"]
    if not records:
        raise ValueError(f"dataset {layout.dataset!r} has no usable clips")
    val = [r for r in records if r.split == "val"]
    return (val or records)[0].clip_id


def sample_grid(model_path: str | Path, layout: DatasetLayout, clip_id: str | None = None, n_frames: int = 4,
                scale: int = 2) -> np.ndarray:
    """Rows of (source | synthesized | real) for the first ``n_frames`` frames of a clip, RGB uint8."""
    generator, config = load_generator(model_path)
    clip_id = clip_id or review_clip(layout)
    frames = list(iter_clip_frames(layout, clip_id, clip_stages(config), (config.input.width, config.input.height),
                                   n_frames))
    rows = [np.concatenate([source_picture(config, frame), fake, frame["rgb"]], axis=1)
            for frame, fake in zip(frames, synthesize_frames(generator, frames, first_frame="zeros",
                                                             sampler=feature_sampler(model_path, generator)))]
    return frame_grid([(None, rows)], scale)


def frame_grid(blocks: Sequence[tuple[str | None, Sequence[np.ndarray]]], scale: int = 2) -> np.ndarray:
    """The one grid renderer: blocks of frames stacked top to bottom, each under an optional caption strip,
    padded to the widest block and scaled up (nearest) so small frames stay readable. RGB uint8."""
    parts = []
    for caption, frames in blocks:
        if not len(frames):
            continue
        block = np.concatenate(list(frames), axis=0)
        if caption:
            strip = np.full((14, block.shape[1], 3), 255, np.uint8)
            cv2.putText(strip, caption, (2, 11), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0))
            block = np.concatenate([strip, block], axis=0)
        parts.append(block)
    if not parts:
        raise ValueError("no frames to draw a grid of")
    width = max(p.shape[1] for p in parts)
    grid = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0))) for p in parts], axis=0)
    return cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else grid


def png_bytes(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode the review image")
    return buffer.tobytes()
