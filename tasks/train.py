"""Prefect tasks of the training stage: the Ray Train run, and the artifacts a user reviews afterwards."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.artifacts import artifact_key, data_uri, publish_markdown, publish_table
from models.training import TrainJob, TrainOutcome, run_training
from models.training.launch import read_metrics
from models.training.review import loss_curve_png, png_bytes, review_clip, sample_grid
from storage.layout import DatasetLayout

# Worker failures are retried inside Ray Train (FailureConfig, from the last checkpoint); a Prefect retry
# would start the run over, so none here.


@task(name="ray-train", task_run_name="train {job.dataset} -> {job.run_dir}", cache_policy=NO_CACHE)
def train_task(job: TrainJob) -> TrainOutcome:
    return run_training(job)


def _image_markdown(title: str, png: bytes, caption: str) -> str:
    # the picture travels with the artifact instead of needing a file server
    return f"### {title}\n\n![{title}]({data_uri(png)})\n\n{caption}\n"


@task(name="publish-training-artifacts", cache_policy=NO_CACHE)
def publish_training_task(outcome: TrainOutcome, dataset: str, data_root: str) -> dict[str, str]:
    """A table of final metrics and checkpoints, a loss-curve plot and a sample grid, all keyed by dataset."""
    run = Path(outcome.run_dir)
    keys: dict[str, str] = {}
    rows = [{"metric": k, "value": round(v, 5)} for k, v in sorted(outcome.final_metrics.items())]
    rows += [{"metric": "status", "value": outcome.status}, {"metric": "message", "value": outcome.message},
             {"metric": "steps", "value": outcome.steps}, {"metric": "seconds", "value": round(outcome.seconds, 1)},
             {"metric": "samples/s", "value": round(outcome.samples_per_second or 0.0, 3)},
             {"metric": "model", "value": outcome.model_path or "-"},
             {"metric": "checkpoint", "value": outcome.checkpoint_path or "-"},
             {"metric": "tensorboard", "value": f"tensorboard --logdir {outcome.tensorboard_dir}"}]
    keys["table"] = publish_table(artifact_key("train", dataset), rows,
                                  f"Training run `{run.name}` on `{dataset}`: **{outcome.status}**. {outcome.message}")
    metrics = read_metrics(run)
    if metrics:
        curve = loss_curve_png(metrics)
        (run / "loss_curve.png").write_bytes(curve)
        keys["loss_curve"] = publish_markdown(artifact_key("train", dataset, "loss-curve"), _image_markdown(
            "Loss curves", curve, f"run `{run.name}`, {len(metrics)} steps (log scale)"), "training loss curves")
    if outcome.model_path:
        layout = DatasetLayout(Path(data_root), dataset)
        clip = review_clip(layout)
        grid = png_bytes(sample_grid(outcome.model_path, layout, clip))
        (run / "samples.png").write_bytes(grid)
        keys["samples"] = publish_markdown(artifact_key("train", dataset, "samples"), _image_markdown(
            "Samples: source | synthesized | real", grid, f"clip `{clip}`, first frames, model `{outcome.model_path}`"),
            "sample frames of the trained model")
    (run / "artifacts.json").write_text(json.dumps(keys, indent=2))
    return keys
