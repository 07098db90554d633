"""Future video prediction (the paper's Section 4 extension): the `predict` flow and the predictor's
training flow.

predict: observed frames' maps -> predicted future maps (mask predictor) -> frames (vid2vid), written
as observed | predicted | real, then the horizon table (Table 3 form) over held-out clips against two
baselines that need no training, published as one table artifact.

train-predictor: the mask predictor on Ray Train, through the same launcher as vid2vid.
"""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from models.prediction.checkpoint import load_predictor
from models.prediction.config import load_predictor_config
from models.prediction.horizon import HorizonReport
from models.prediction.pipeline import PredictionVideo, map_stages, validate_request
from flows.forms import PredictParams, TrainPredictorParams
from flows.naming import dataset_tag, run_name
from flows.params import settings_of
from flows.training import default_run_name, require_model, train_job
from models.training import TrainJob, TrainSettings
from storage.layout import check_name
from storage.manifest import read_manifest
from storage.outputs import check_output
from storage.registry import resolve_model_path
from storage.target import resolve_target
from tasks.predict import evaluate_horizon_task, predict_clip_task, publish_horizon_task, publish_predictor_training_task


class PredictResult(BaseModel):
    video: PredictionVideo
    table: list[dict] = []
    artifact_key: str | None = None


@flow(name="predict", log_prints=True, flow_run_name=run_name("predict", PredictParams, lambda p: p.dataset, dataset_tag))
def predict_flow(params: PredictParams) -> PredictResult:
    target = resolve_target(params.dataset, params.data_root, params.runs_root, params.weights_dir)
    layout = target.layout
    params = params.model_copy(update={"checkpoint": resolve_model_path(  # a deployment's reference, resolved once
        params.checkpoint, target.runs)})
    validate_request(layout, params.clip, params.observed, params.future, params.checkpoint, params.predictor)
    out = check_output(params.out, "--out", data_root=layout.root, inputs=[params.checkpoint, params.predictor])
    check_output(out.with_name(out.stem + ".masks.mp4"), "--out's masks file", data_root=layout.root,
                 inputs=[params.checkpoint, params.predictor])
    video = predict_clip_task(params.checkpoint, params.predictor, layout, params.clip,
                              params.observed, params.future, params.out)
    print(f"wrote {video.frames} frames to {video.video} and {video.masks}")
    if not params.evaluate:
        return PredictResult(video=video)
    clips = [r.clip_id for r in read_manifest(layout) if r.status == "ok" and r.split == params.split]
    report: HorizonReport = evaluate_horizon_task(params.checkpoint, params.predictor, layout, clips or [params.clip], params.observed,
                                                  params.future, params.fid, params.weights_dir)
    key = publish_horizon_task(report, layout.dataset, params.observed)
    return PredictResult(video=video, table=report.rows, artifact_key=key)


class TrainPredictorResult(BaseModel):
    status: str
    message: str
    run_dir: str
    model_path: str | None
    steps: int
    artifact_key: str


@flow(name="train-predictor", log_prints=True, flow_run_name=run_name("train-predictor", TrainPredictorParams, lambda p: p.dataset, dataset_tag))
def train_predictor_flow(params: TrainPredictorParams) -> TrainPredictorResult:
    target = resolve_target(params.dataset, params.data_root, params.runs_root, ray_address=params.ray_address)
    layout = target.layout
    if not layout.manifest_path.is_file():
        raise FileNotFoundError(f"dataset {layout.dataset!r} has no manifest at {layout.manifest_path}: ingest it first")
    config = load_predictor_config(params.config)
    if params.resume_from:
        load_predictor(params.resume_from, flag="--resume-from")  # the kind check
    name = params.run_name or default_run_name(layout.dataset, "predictor", config.name)
    settings = {**settings_of(params, TrainSettings), "window_frames": params.window_frames or config.window,
                "ray_address": target.ray_address}
    job = TrainJob(dataset=layout.dataset, data_root=str(layout.root), model=config,
                   run_dir=str(target.runs / check_name(name, "run")),
                   stages=map_stages(config), resume_from=params.resume_from, **settings)
    outcome = train_job(job)  # the one training path: a cluster's Ray Jobs endpoint or a local Ray, as vid2vid's
    key = publish_predictor_training_task(outcome, layout.dataset)
    require_model(outcome, f"predictor training of {layout.dataset!r}")
    return TrainPredictorResult(status=outcome.status, message=outcome.message, run_dir=outcome.run_dir,
                                model_path=outcome.model_path, steps=outcome.steps, artifact_key=key)

