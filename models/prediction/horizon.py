"""The prediction table in the form of the paper's Table 3, per horizon step.

Rows: one per method and future step. Methods: the trained predictor with vid2vid turning its maps into
frames ("predictor + vid2vid"), and two baselines that need no training — "copy last frame" (the last
observed map and frame, unchanged) and "extrapolate last flow" (the last map and frame carried on at
constant velocity). Columns: mIoU of predicted vs real maps, PSNR and SSIM of predicted vs real frames
(means over clips), and frame FID (Inception) over the clips' frames at that step — text, never a
number, when the Inception weights are missing or fewer than two clips reach that step.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.metrics import evaluate, weights_problem
from storage.layout import DatasetLayout

from .checkpoint import load_predictor
from .config import PredictorConfig
from .pipeline import Step, carried_frame, check_request, clip_record, forecast_clip, load_vid2vid, synthesized, vid2vid_size
from .rollout import CopyLastForecaster, ExtrapolateFlowForecaster, Forecaster, PredictorForecaster
from .scores import IoUAccumulator, psnr, ssim

PREDICTOR_ROW = "predictor + vid2vid"


@dataclass
class _MethodScores:
    iou: dict[int, IoUAccumulator]
    psnr: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    ssim: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    fake: dict[int, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    real: dict[int, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class HorizonReport:
    rows: list[dict[str, object]]
    clips: list[str]
    skipped: dict[str, str]  # clip -> why it was not scored
    predictor: str
    vid2vid: str


def _frames(method: str, steps: Iterator[Step], generator) -> Iterator[tuple[Step, np.ndarray]]:  # noqa: ANN001
    if method == PREDICTOR_ROW:
        yield from synthesized(generator, steps)
    else:
        for step in steps:
            yield step, carried_frame(step)


def evaluate_horizon(predictor_path: str | Path, vid2vid_path: str | Path, layout: DatasetLayout,
                     clips: Sequence[str], observed: int, future: int, *, fid: bool = True,
                     weights_dir: str | os.PathLike[str] | None = None) -> HorizonReport:
    model = load_predictor(predictor_path)
    generator = load_vid2vid(vid2vid_path)
    config, size = model.config, vid2vid_size(generator)
    methods: dict[str, Forecaster] = {PREDICTOR_ROW: PredictorForecaster(model), "copy last frame": CopyLastForecaster(),
                                      "extrapolate last flow": ExtrapolateFlowForecaster()}
    scores = {m: _MethodScores({h: IoUAccumulator(config.input.num_classes, config.input.ignore_label)
                                for h in range(1, future + 1)}) for m in methods}
    used, skipped = [], {}
    fid_problem = weights_problem("inception", weights_dir) if fid else None
    keep_frames = fid and fid_problem is None
    for clip in clips:
        record = clip_record(layout, clip)
        if record.n_frames < observed + future:
            skipped[clip] = f"{record.n_frames} frames < observed {observed} + future {future}"
            continue
        check_request(record, observed, future)
        used.append(clip)
        for method, forecaster in methods.items():
            steps = forecast_clip(forecaster, config, layout, clip, observed, future, size)
            for step, fake in _frames(method, steps, generator):
                if step.horizon < 1:
                    continue
                s = scores[method]
                s.iou[step.horizon].update(step.maps.semantic[0].numpy(), step.real_semantic)
                s.psnr[step.horizon].append(psnr(fake, step.real_rgb))
                s.ssim[step.horizon].append(ssim(fake, step.real_rgb))
                if keep_frames:
                    s.fake[step.horizon].append(fake)
                    s.real[step.horizon].append(step.real_rgb)
    if not used:
        raise ValueError(f"no clip of {layout.dataset!r} has observed {observed} + future {future} frames: {skipped}")
    rows = []
    for method, s in scores.items():
        for h in range(1, future + 1):
            row: dict[str, object] = {"method": method, "step": h, "mIoU": round(s.iou[h].miou, 4),
                                      "PSNR": round(float(np.mean(s.psnr[h])), 3), "SSIM": round(float(np.mean(s.ssim[h])), 4)}
            if fid_problem:
                row["FID (frame)"] = fid_problem
            elif fid:
                report = evaluate(["fid_inception"], weights_dir, fake_videos=[np.stack(s.fake[h])],
                                  real_videos=[np.stack(s.real[h])])
                value = report.values["fid_inception"]
                row["FID (frame)"] = round(value, 3) if isinstance(value, float) else value
            rows.append(row)
    return HorizonReport(rows, used, skipped, str(predictor_path), str(vid2vid_path))


def mask_miou(forecaster: Forecaster, config: PredictorConfig, layout: DatasetLayout, clips: Sequence[str],
              observed: int, future: int) -> dict[int, float]:
    """mIoU of predicted vs real maps per future step over ``clips`` (maps only: no vid2vid, no frames)."""
    iou = {h: IoUAccumulator(config.input.num_classes, config.input.ignore_label) for h in range(1, future + 1)}
    for clip in clips:
        for step in forecast_clip(forecaster, config, layout, clip, observed, future, config.size):
            if step.horizon >= 1 and step.real_semantic is not None:
                iou[step.horizon].update(step.maps.semantic[0].numpy(), step.real_semantic)
    return {h: acc.miou for h, acc in iou.items()}
