"""The training flow: a Ray Train run on a dataset's shards, and a scheduled-retraining mode.

Retraining fine-tunes the last good model of the dataset when the data changed since it was trained,
and does nothing (with a note) when the data did not change.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from tasks.artifacts import artifact_key, publish_markdown
from models.training import TrainJob, input_stages
from models.training.job import ExtraStage
from models.training.launch import dataset_fingerprint
from models.vid2vid.config import load_model_config
from storage.atomic import atomic_write_bytes
from storage.layout import DatasetLayout, check_name, data_root
from models.training.ray_jobs import is_job_endpoint
from tasks.ray_job import stop_jobs_of_flow_run, train_on_cluster_task
from tasks.train import publish_training_task, train_task

RUNS_ROOT_ENV = "VID2VID_RUNS_ROOT"


def runs_root(override: str | None = None) -> Path:
    return Path(override or os.environ.get(RUNS_ROOT_ENV) or "runs")


class TrainParams(BaseModel):
    dataset: str = "street"
    config: str = Field(default="tiny", description="model preset (street, face, pose, tiny) or a YAML path")
    data_root: str | None = None
    runs_root: str | None = Field(default=None, description="default: $VID2VID_RUNS_ROOT or ./runs")
    run_name: str | None = Field(default=None, description="default: <dataset>-<config>-<time>-<random>")
    mode: Literal["train", "retrain", "rebuild"] = Field(
        default="train", description="retrain: fine-tune the last good model if the data changed; rebuild: train "
                                     "afresh if the data or config changed; both do nothing when neither did")
    workers: int = Field(default=2, ge=1)
    gpus_per_worker: float = Field(default=0.0, ge=0.0)
    epochs: int | None = Field(default=None, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    checkpoint_every: int = Field(default=10, ge=1)
    resume_from: str | None = None
    ray_address: str | None = Field(default=None, description="default: $VID2VID_RAY_ADDRESS, else a local Ray")
    weights_dir: str | None = None
    window_frames: int | None = Field(default=None, ge=2)
    extra_stage: ExtraStage = Field(default="sketch", description="which stage feeds a config's extra source channels")
    inject_failure_at_step: int | None = Field(default=None, description="test only")
    inject_nan_at_step: int | None = Field(default=None, description="test only")


class TrainFlowResult(BaseModel):
    status: str  # completed | stopped_nan | unchanged
    message: str
    run_dir: str | None = None
    model_path: str | None = None
    steps: int = 0
    artifacts: dict[str, str] = {}


def _latest_pointer(root: Path, dataset: str) -> Path:
    return root / f"latest-{dataset}.json"


def _default_run_name(dataset: str, model_name: str) -> str:
    """Stable across retries of one flow run (so a retried run attaches to its Ray job), unique across runs."""
    run_id = flow_run.get_id()
    if run_id:
        started = flow_run.get_scheduled_start_time()
        return f"{dataset}-{model_name}-{started.strftime('%Y%m%d-%H%M%S')}-{run_id[:6]}"
    return f"{dataset}-{model_name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _ray_address(params: "TrainParams") -> str | None:
    return params.ray_address or os.environ.get("VID2VID_RAY_ADDRESS")


def _stop_cluster_jobs(flow, run, state) -> None:  # noqa: ANN001 - Prefect's hook signature
    """Cancelling the flow run stops the Ray job it submitted (a killed worker does not: that is a restart)."""
    params = run.parameters.get("params") or {}
    address = params.get("ray_address") or os.environ.get("VID2VID_RAY_ADDRESS")
    if is_job_endpoint(address):
        stop_jobs_of_flow_run(address, str(run.id))


@flow(name="train", log_prints=True, on_cancellation=[_stop_cluster_jobs])
def train_flow(params: TrainParams) -> TrainFlowResult:
    logger = get_run_logger()
    dataset = check_name(params.dataset, "dataset")
    root = data_root(params.data_root).resolve()
    layout = DatasetLayout(root, dataset)
    if not layout.manifest_path.is_file():
        raise FileNotFoundError(f"dataset {dataset!r} has no manifest at {layout.manifest_path}: ingest it first")
    model = load_model_config(params.config)
    stages = input_stages(model.to_dict(), params.extra_stage)
    runs = runs_root(params.runs_root).resolve()
    pointer = _latest_pointer(runs, dataset)
    resume_from = params.resume_from
    if params.mode in ("retrain", "rebuild"):
        fingerprint = dataset_fingerprint(layout, stages)
        last = json.loads(pointer.read_text()) if pointer.is_file() else None
        if last and last["dataset_fingerprint"] == fingerprint and last.get("config") == params.config:
            note = (f"Dataset `{dataset}` is unchanged since run `{last['run_dir']}` (fingerprint "
                    f"`{fingerprint[:12]}`, config `{params.config}`): nothing to retrain.")
            publish_markdown(artifact_key(params.mode, dataset), note, f"{params.mode}: nothing to do")
            logger.info(note)
            return TrainFlowResult(status="unchanged", message=note, run_dir=last["run_dir"], model_path=last["model_path"])
        if last and params.mode == "retrain":
            resume_from = resume_from or last["model_path"]
            logger.info("dataset %s changed since %s: fine-tuning %s", dataset, last["run_dir"], resume_from)
    name = params.run_name or _default_run_name(dataset, model.name)
    job = TrainJob(
        dataset=dataset, data_root=str(root), model=model.to_dict(), run_dir=str(runs / check_name(name, "run")),
        stages=stages,
        window_frames=params.window_frames, epochs=params.epochs, max_steps=params.max_steps, workers=params.workers,
        gpus_per_worker=params.gpus_per_worker, checkpoint_every=params.checkpoint_every, resume_from=resume_from,
        weights_dir=params.weights_dir, ray_address=_ray_address(params),
        inject_failure_at_step=params.inject_failure_at_step, inject_nan_at_step=params.inject_nan_at_step,
    )
    outcome = train_on_cluster_task(job) if is_job_endpoint(job.ray_address) else train_task(job)
    artifacts = publish_training_task(outcome, dataset, str(root))
    if outcome.status == "completed" and outcome.model_path:
        atomic_write_bytes(pointer, json.dumps({"run_dir": outcome.run_dir, "model_path": outcome.model_path,
                                                "dataset_fingerprint": outcome.dataset_fingerprint,
                                                "config": params.config}).encode())
    else:
        logger.error(outcome.message)
    return TrainFlowResult(status=outcome.status, message=outcome.message, run_dir=outcome.run_dir,
                           model_path=outcome.model_path, steps=outcome.steps, artifacts=artifacts)
