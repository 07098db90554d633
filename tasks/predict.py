"""Prefect tasks of future prediction: thin glue around ``models.prediction``."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.prediction.horizon import HorizonReport, evaluate_horizon
from models.prediction.pipeline import PredictionVideo, render_prediction
from models.training import TrainOutcome
from storage.layout import DatasetLayout
from tasks.artifacts import artifact_key, publish_table


@task(name="predict-clip", task_run_name="predict {clip_id}", cache_policy=NO_CACHE)
def predict_clip_task(checkpoint: str, predictor: str, layout: DatasetLayout, clip_id: str, observed: int,
                      future: int, out: str) -> PredictionVideo:
    return render_prediction(checkpoint, predictor, layout, clip_id, observed,
                             future, out)


@task(name="evaluate-horizon", cache_policy=NO_CACHE)
def evaluate_horizon_task(checkpoint: str, predictor: str, layout: DatasetLayout, clips: list[str],
                          observed: int, future: int, fid: bool, weights_dir: str | None) -> HorizonReport:
    return evaluate_horizon(predictor, checkpoint, layout, clips, observed, future,
                            fid=fid, weights_dir=weights_dir)


@task(name="publish-horizon-table", cache_policy=NO_CACHE)
def publish_horizon_task(report: HorizonReport, dataset: str, observed: int) -> str:
    skipped = "; ".join(f"`{c}`: {why}" for c, why in report.skipped.items()) or "none"
    description = (f"Future prediction on `{dataset}` (Table 3 form), {observed} observed frames, per future step: "
                   f"mIoU of predicted vs real maps, PSNR/SSIM and frame FID of predicted vs real frames. "
                   f"Predictor `{report.predictor}`, vid2vid `{report.vid2vid}`; clips {report.clips}; "
                   f"skipped: {skipped}. Baselines need no training.")
    return publish_table(artifact_key("predict", dataset, "horizon"), report.rows, description)


@task(name="publish-predictor-training", cache_policy=NO_CACHE)
def publish_predictor_training_task(outcome: TrainOutcome, dataset: str) -> str:
    rows = [{"metric": k, "value": round(v, 5)} for k, v in sorted(outcome.final_metrics.items())]
    rows += [{"metric": "status", "value": outcome.status}, {"metric": "steps", "value": outcome.steps},
             {"metric": "seconds", "value": round(outcome.seconds, 1)},
             {"metric": "samples/s", "value": round(outcome.samples_per_second or 0.0, 3)},
             {"metric": "model", "value": outcome.model_path or "-"}]
    return publish_table(artifact_key("train-predictor", dataset), rows,
                         f"Mask predictor run `{Path(outcome.run_dir).name}` on `{dataset}`: {outcome.message}")
