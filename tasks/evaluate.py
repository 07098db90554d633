"""Evaluation glue: synthesize every held-out clip of each run, then score them against the real clips.

Metrics come from ``models.metrics.evaluate``, which reports a missing or unusable feature network as
text ("not computed: weights missing (file X)") instead of a number.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from models.metrics import StatsCache, evaluate
from models.metrics.lossless import lossless_path, read_lossless
from models.metrics.report import FIRST_FRAME, SCORED_FROM, scored
from models.training.review import frame_grid, png_bytes
from models.vid2vid.checkpoint import load_model
from models.vid2vid.config import ModelConfig
from storage.clip_reader import iter_clip_frames
from storage.dataset import require_label_spaces
from storage.layout import DatasetLayout
from storage.shards import read_meta
from storage.video import VideoSource, decode
from tasks.synthesize import SynthesizedClip, render_clip

#: the seed of a multimodal model's second sample in the evaluation artifact (every clip is scored at seed 0)
SECOND_SEED = 1


class RunEvaluation(BaseModel):
    run: str
    model_path: str
    config: str
    variant: str  # which ablation / baseline this model is
    clips: list[SynthesizedClip]
    values: dict[str, float | str]
    details: dict[str, dict]
    references: dict[str, float | str] = {}  # the same metrics on real data (models.metrics.report)
    second_sample: SynthesizedClip | None = Field(
        default=None, description="multimodal models: the first clip again from another seed (clips use seed 0)")


def variant_of(config: ModelConfig) -> str:
    """The paper's Table 2 names for a model config."""
    if config.frame_by_frame:
        return "frame-by-frame baseline"
    missing = [name for name, on in (("fg/bg prior", config.generator.use_fg_prior),
                                     ("D_V", config.uses_video_discriminator),
                                     ("flow warping", config.generator.use_flow_warping)) if not on]
    return "vid2vid" if not missing else "vid2vid without " + ", ".join(missing)


def _decoded(path: str) -> np.ndarray:
    return np.stack(list(decode(VideoSource(Path(path).stem, Path(path)))))


def _synthesized(clip: SynthesizedClip) -> np.ndarray:
    """The scored frames of a synthesized clip, from its lossless copy."""
    return scored(np.stack(list(read_lossless(clip.lossless))))


def _real(layout: DatasetLayout, clip: str, size: tuple[int, int], frames: int | None) -> np.ndarray:
    return scored(np.stack([f["rgb"] for f in iter_clip_frames(layout, clip, ("rgb",), size, frames)]))


def _warp_clips(layout: DatasetLayout, clips: Sequence[SynthesizedClip], size: tuple[int, int]) -> Iterator[tuple]:
    for clip in clips:
        if not layout.shard_path("flow", clip.clip_id).is_file():
            continue
        flows = list(iter_clip_frames(layout, clip.clip_id, ("flow",), size, clip.frames))[: clip.frames - 1]
        flow = scored(np.stack([f["flow"] for f in flows]).transpose(0, 2, 3, 1))
        valid = scored(np.stack([f.get("occlusion", np.zeros(f["flow"].shape[1:], np.uint8)) == 0 for f in flows]))
        yield _synthesized(clip), flow, valid, _real(layout, clip.clip_id, size, clip.frames)


def _fingerprints(layout: DatasetLayout, clips: Sequence[str], size: tuple[int, int]) -> list[str]:
    return [f"{clip}:{read_meta(layout.shard_path('rgb', clip)).fingerprint}:{size}:scored" for clip in clips]


@task(name="evaluate-run", task_run_name="evaluate {run}", cache_policy=NO_CACHE)
def evaluate_run_task(run: str, model_path: str, layout: DatasetLayout, clips: list[str], out_dir: str,
                      metrics: list[str], weights_dir: str | None, cache_dir: str,
                      reference_clips: list[str] | None = None) -> RunEvaluation:
    """``reference_clips``: real clips of another split (training) for each FID's real-vs-real floor."""
    model = load_model(model_path)  # once for every clip and the second sample
    config = model.config
    require_label_spaces(layout, config.input.label_spaces, None, f"model {model_path} reads", clips)
    size = (config.input.width, config.input.height)
    folder = Path(out_dir) / run
    rendered = [render_clip(model, layout, clip, folder / f"{clip}.mp4", seed=0, first_frame=FIRST_FRAME,
                            side_by_side=folder / f"{clip}.side_by_side.mp4",
                            lossless=lossless_path(folder / f"{clip}.mp4")) for clip in clips]
    second = None
    if config.multimodal.enabled and clips:  # the same clip sampled twice: different looks, same layout
        second = render_clip(model, layout, clips[0], folder / f"{clips[0]}.seed1.mp4", seed=SECOND_SEED,
                             first_frame=FIRST_FRAME)
    references = list(reference_clips or [])
    report = evaluate(
        metrics, weights_dir,
        fake_videos=(_synthesized(c) for c in rendered),
        real_videos=(_real(layout, c.clip_id, size, c.frames) for c in rendered),
        reference_videos=(_real(layout, clip, size, None) for clip in references) if references else None,
        warp_clips=_warp_clips(layout, rendered, size) if "warp_error" in metrics else None,
        pairs=((_synthesized(c), _real(layout, c.clip_id, size, c.frames)) for c in rendered),
        cache=StatsCache(cache_dir), real_fingerprints=_fingerprints(layout, clips, size),
        reference_fingerprints=_fingerprints(layout, references, size),
    )
    return RunEvaluation(run=run, model_path=model_path, config=config.name, variant=variant_of(config),
                         clips=rendered, values=report.values, details=report.details, references=report.references,
                         second_sample=second)


def sample_indices(n: int, frames: int = 3) -> list[int]:
    """``frames`` indices spread over the scored frames of an ``n``-frame clip: first, middle(s), last. Frame 0
    is the real frame every method is given, and the frames just after it are warped from it: a grid of the
    clip's start alone flatters a model that drifts later."""
    first = min(SCORED_FROM, n - 1)
    return sorted(set(np.linspace(first, n - 1, frames).round().astype(int).tolist())) if n > 0 else []


def frame_grid_png(evaluations: Sequence[RunEvaluation], frames: int = 3) -> bytes:
    """One block per run: frames sampled across its first side-by-side video (source | synthesized | real);
    for a multimodal run a second block puts two samples of that clip side by side (seed 0 | seed 1)."""
    blocks = []
    for evaluation in evaluations:
        if not evaluation.clips or not evaluation.clips[0].side_by_side:
            continue
        video = _decoded(evaluation.clips[0].side_by_side)
        picked = sample_indices(len(video), frames)
        blocks.append((f"{evaluation.run} ({evaluation.variant}), frames {', '.join(map(str, picked))}",
                       list(video[picked])))
        if evaluation.second_sample is not None:
            first, second = _decoded(evaluation.clips[0].video), _decoded(evaluation.second_sample.video)
            picked = sample_indices(min(len(first), len(second)), frames)
            blocks.append((f"{evaluation.clips[0].clip_id}: seed 0 | seed {SECOND_SEED}",
                           list(np.concatenate([first[picked], second[picked]], axis=2))))
    return png_bytes(frame_grid(blocks)) if blocks else b""


def gif_preview(video_path: str, max_frames: int = 30, scale: int = 2) -> bytes:
    """An animated GIF of a video: the Prefect UI strips <video> tags but shows images."""
    from PIL import Image

    frames = _decoded(video_path)[:max_frames]
    images = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=1000 // 12, loop=0)
    return buffer.getvalue()
