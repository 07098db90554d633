"""Pictures a user reviews after a run: the loss curves and a grid of source | synthesized | real frames."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from models.synthesis import clip_stages, feature_sampler, source_picture, synthesize_frames
from models.vid2vid.checkpoint import load_model
from models.vid2vid.config import ModelConfig
from storage.clip_reader import iter_clip_frames
from storage.layout import DatasetLayout
from storage.manifest import read_manifest


LOSS_ORDER = ("G_total", "D_total", "L1", "G_GAN_I", "G_FM_I", "G_GAN_V", "G_FM_V", "G_VGG", "G_flow_warp",
              "G_flow_epe", "G_mask", "G_fake_warp", "D_real_I", "D_fake_I", "D_real_V", "D_fake_V")
SCHEDULE_KEYS = ("seq_len", "n_scales")  # the progressive schedule (Sec. 3.3): each change makes the losses jump


def active_losses(model: ModelConfig | dict, metrics: list[dict]) -> list[str]:
    """The loss terms this run optimised: not those its config weighs 0 or switches off, nor those that
    were 0 at every logged step (never computed, e.g. no reference flow). Showing them as achieved lies."""
    config = ModelConfig.model_validate(model)
    lw = config.loss
    video = config.uses_video_discriminator
    off = {"G_VGG": not (lw.use_vgg and lw.lambda_vgg > 0), "G_mask": lw.lambda_mask == 0,
           "G_fake_warp": lw.lambda_fake_warp == 0 or config.frame_by_frame,
           "G_flow_warp": lw.lambda_flow == 0 or config.frame_by_frame,
           "G_flow_epe": lw.lambda_flow == 0 or config.frame_by_frame,
           "G_FM_I": lw.lambda_feat == 0, "G_FM_V": lw.lambda_feat == 0 or not video,
           "G_GAN_V": lw.lambda_temporal_gan == 0 or not video, "D_real_V": not video, "D_fake_V": not video}
    never = {k for k in LOSS_ORDER if metrics and all(not m.get(k) for m in metrics)}
    return [k for k in LOSS_ORDER if not off.get(k, False) and k not in never]


def schedule_changes(metrics: list[dict]) -> list[tuple[float, str]]:
    """(step, "seq_len 4→8") wherever the progressive schedule changed between logged steps."""
    changes = []
    for before, after in zip(metrics, metrics[1:]):
        moved = [f"{k} {before[k]:g}→{after[k]:g}" for k in SCHEDULE_KEYS
                 if k in before and k in after and before[k] != after[k]]
        if moved:
            changes.append((after["step"], ", ".join(moved)))
    return changes


def smoothed(values: Sequence[float], weight: float = 0.8) -> list[float]:
    """TensorBoard's exponential moving average, debiased so the first points are not pulled to 0."""
    out, average = [], 0.0
    for n, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**n))
    return out


def loss_curve_png(metrics: list[dict], keys: Sequence[str] = ("G_total", "D_total", "L1", "G_flow_warp")) -> bytes:
    """Each loss raw (faint) and smoothed, with the schedule's changes as dashed lines: a jump there is the
    schedule (longer sequences, a finer scale), not divergence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5), dpi=100)
    steps = [m["step"] for m in metrics]
    for key in keys:
        points = [(m["step"], m[key]) for m in metrics if m.get(key) is not None and m[key] > 0]
        if not points:
            continue
        xs, ys = zip(*points)
        raw = axis.plot(xs, ys, alpha=0.3, linewidth=1, marker="." if len(steps) < 30 else None)[0]
        axis.plot(xs, smoothed(ys), color=raw.get_color(), linewidth=1.8, label=f"{key} (smoothed)")
    for step, label in schedule_changes(metrics):
        axis.axvline(step, color="grey", linestyle="--", linewidth=1)
        axis.annotate(label, (step, 1), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                      va="top", ha="right", color="dimgrey")
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
    model = load_model(model_path)
    generator, config = model.generator, model.config
    clip_id = clip_id or review_clip(layout)
    frames = list(iter_clip_frames(layout, clip_id, clip_stages(config), (config.input.width, config.input.height),
                                   n_frames))
    rows = [np.concatenate([source_picture(config, frame), fake, frame["rgb"]], axis=1)
            for frame, fake in zip(frames, synthesize_frames(generator, frames, first_frame="zeros",
                                                             sampler=feature_sampler(model)))]
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
