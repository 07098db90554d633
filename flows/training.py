"""What every training flow does the same way, whatever the model kind (vid2vid's ``train`` flow, the mask
predictor's ``train-predictor``): the run folder's default name, training on a cluster's Ray Jobs endpoint or
on a local Ray, and the one failure convention. The per-worker loop is one too (``models/training/loop.py``)."""

from __future__ import annotations

import secrets
import time

from prefect.runtime import flow_run

from flows.failures import TrainingFailed
from models.training import TrainJob, TrainOutcome
from models.training.ray_jobs import RayJobFailed, is_job_endpoint
from storage.layout import DatasetLayout
from tasks.ray_job import train_on_cluster_task
from tasks.train import train_task


def default_run_name(*parts: str) -> str:
    """``<parts>-<time>-<id>``: stable across retries of one flow run (so a retried run attaches to its Ray job,
    whose id is the folder's name), unique across runs."""
    run_id = flow_run.get_id()
    if run_id:
        started = flow_run.get_scheduled_start_time()
        return "-".join([*parts, started.strftime("%Y%m%d-%H%M%S"), run_id[:6]])
    return "-".join([*parts, time.strftime("%Y%m%d-%H%M%S"), secrets.token_hex(2)])


def train_job(job: TrainJob, layout: DatasetLayout | None = None) -> TrainOutcome:
    """Train ``job`` as a Ray Job on the cluster its ``ray_address`` names, else on a local (or attached) Ray
    (given ``layout``, the job's dataset as the flow resolved it); a cluster job that ended without a result
    fails the flow with the job's own error line."""
    try:
        return train_on_cluster_task(job) if is_job_endpoint(job.ray_address) else train_task(job, layout)
    except RayJobFailed as exc:
        raise TrainingFailed(str(exc)) from None


def require_model(outcome: TrainOutcome, what: str) -> None:
    """The one failure convention of training: a run that produced no model (a NaN stop) ends the flow run
    Failed with one line; the artifacts published before show the run up to the stop, and its last good
    checkpoint is kept."""
    if outcome.status != "completed" or not outcome.model_path:
        raise TrainingFailed(f"{what} failed: {outcome.message}", detail=outcome)
