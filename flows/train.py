"""The training flow: a Ray Train run on a dataset's shards, and a scheduled-retraining mode.

Every completed run is registered with its lineage (storage/registry.py). Retraining fine-tunes the
champion of the same (dataset, config) — never another config's model — when the data or the config
changed since it was trained (a first model starts fresh, or from ``init_from``), then challenges it
(flows/challenge.py): one evaluation of both, the quality gate, promoted or rejected. Nothing to do
(a note) when the champion, or an earlier challenger from it, was already trained on this data and config.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel

from flows.challenge import ChallengeParams, challenge_step
from flows.forms import TrainParams
from flows.naming import dataset_tag, run_name
from flows.params import settings_of
from flows.training import default_run_name, require_model, train_job
from models.gate import load_gate
from models.training import TrainJob, TrainSettings, input_stages
from models.training.decision import training_decision
from models.training.launch import dataset_fingerprint
from models.vid2vid.checkpoint import validate_init_from
from models.vid2vid.config import ModelConfig, load_model_config
from storage import locations
from storage.dataset import require_label_spaces, require_stage_shards
from storage.fingerprint import canonical_hash
from storage.layout import check_name
from storage.registry import sync
from storage.target import Target, resolve_target
from tasks.artifacts import artifact_key, publish_markdown
from tasks.multimodal import fit_mixtures_task
from models.training.ray_jobs import is_job_endpoint
from tasks.ray_job import stop_jobs_of_flow_run
from tasks.registry import register_run_task
from tasks.train import publish_training_task


class TrainFlowResult(BaseModel):
    status: str  # completed | unchanged (a stopped run raises TrainingFailed)
    message: str
    run_dir: str | None = None
    model_path: str | None = None
    steps: int = 0
    artifacts: dict[str, str] = {}
    model: str | None = None  # the run's registry reference, DATASET/CONFIG@RUN
    decision: str | None = None  # retrain: promoted | rejected
    champion: str | None = None  # retrain: the champion after the decision
    reasons: list[str] = []


def _stop_cluster_jobs(flow, run, state) -> None:  # noqa: ANN001 - Prefect's hook signature
    """Cancelling the flow run stops the Ray job it submitted (a killed worker does not: that is a restart)."""
    params = run.parameters.get("params") or {}
    address = locations.ray_address(params.get("ray_address"))
    if is_job_endpoint(address):
        stop_jobs_of_flow_run(address, str(run.id))


def _run_folder_name(params: TrainParams, model: ModelConfig | None = None) -> str:
    """The run folder's name: the user's, else one derived from the flow run (see ``default_run_name``) and
    the model config (``model``, else the one ``params`` name)."""
    if params.run_name:
        return params.run_name
    if model is not None:
        return default_run_name(params.dataset, model.name)
    try:
        model_name = load_model_config(params.config, params.config_set).name
    except Exception:  # noqa: BLE001 - the body reports a bad config; the name only needs a label
        model_name = Path(params.config).stem
    return default_run_name(params.dataset, model_name)


def _describe(params: TrainParams) -> str:
    """"street tiny-first": the dataset, then the config and the run folder's name (which starts with both
    when it was derived)."""
    run = _run_folder_name(params)
    label = f"{Path(params.config).stem}-{run}" if params.run_name else run.removeprefix(params.dataset + "-")
    return f"{params.dataset} {label}" + ("" if params.mode == "train" else f" ({params.mode})")


def _tags(params: TrainParams) -> list[str]:
    return [*dataset_tag(params), f"config:{Path(params.config).stem}", f"run:{_run_folder_name(params)}"]


_NAME = run_name("train", TrainParams, _describe, _tags)


@flow(name="train", log_prints=True, on_cancellation=[_stop_cluster_jobs], flow_run_name=_NAME)
def train_flow(params: TrainParams) -> TrainFlowResult:
    """The deployment's and the CLI's entry: resolves the target, then runs the shared body."""
    return train(params, resolve_target(params.dataset, params.data_root, params.runs_root, params.weights_dir,
                                        ray_address=params.ray_address))


@flow(name="train", log_prints=True, on_cancellation=[_stop_cluster_jobs], flow_run_name=_NAME)
def train_step(params: TrainParams, target: Target, model: ModelConfig) -> TrainFlowResult:
    """The same flow as a step of a caller that resolved the target and the model config already (the full
    rebuild): ``model`` is ``params.config`` with ``params.config_set``, validated."""
    return train(params, target, model)


def train(params: TrainParams, target: Target, model: ModelConfig | None = None) -> TrainFlowResult:
    """The body of the train flow: ``model`` (default: ``params.config`` with ``params.config_set``, loaded
    here) trained on ``target``'s dataset into a run under ``target.runs``."""
    logger = get_run_logger()
    layout = target.layout
    dataset, root = layout.dataset, layout.root
    if not layout.manifest_path.is_file():
        raise FileNotFoundError(f"dataset {dataset!r} has no manifest at {layout.manifest_path}: ingest it first")
    if model is None:
        model = load_model_config(params.config, params.config_set)
    stages = input_stages(model)
    require_stage_shards(layout, ("rgb", *stages), "train", "training reads")  # before any Ray, local or cluster
    require_label_spaces(layout, model.input.label_spaces, "train", f"model config {params.config!r} reads")
    if params.mode == "retrain":
        load_gate(params.gate)  # a wrong gate is a wrong request: refused before any training
    init_from = None
    if params.init_from:  # a wrong file is a wrong request: refused here, before any Ray (exit 2 on the CLI)
        path, parts, notes = validate_init_from(params.init_from, model)
        init_from = str(path)
        logger.info("starting from the weights of %s (%s)", init_from, ", ".join(parts))
        if notes:
            logger.warning("%s computes differently from config %s in: %s", init_from, params.config, "; ".join(notes))
    runs = target.runs
    registry = sync(runs)
    config_hash = canonical_hash(model.to_dict())
    resume_from, parent, start = params.resume_from, None, "fresh"
    champion = None
    if params.mode in ("retrain", "rebuild"):
        fingerprint = dataset_fingerprint(layout, stages)
        champion, same, note = training_decision(params.mode, registry, dataset, model.name, config_hash, fingerprint,
                                                 init_from, params.max_steps, params.epochs)
        if same is not None:
            publish_markdown(artifact_key(params.mode, dataset), note, f"{params.mode}: nothing to do")
            logger.info(note)
            return TrainFlowResult(status="unchanged", message=note, run_dir=same.run_dir, model_path=same.model_path,
                                   model=same.reference, champion=champion.reference if champion else None)
        if champion is not None:  # retrain fine-tunes the champion of this config: its weights, new optimizers
            if init_from:
                logger.info("init_from %s is for a first model only: %s/%s has a champion", init_from, dataset,
                            model.name)
            init_from = str(validate_init_from(champion.model_path, model)[0])
            logger.info("data or config of %s/%s changed since champion %s: fine-tuning it", dataset, model.name,
                        champion.reference)
    if resume_from:
        parent, start = str(Path(resume_from).resolve()), "resume-from"
    elif init_from:
        parent, start = init_from, "init-from"
    name = _run_folder_name(params, model)
    job = TrainJob(**{**settings_of(params, TrainSettings), "ray_address": target.ray_address, "init_from": init_from},
                   dataset=dataset, data_root=str(root), model=model,
                   run_dir=str(runs / check_name(name, "run")), resume_from=resume_from, weights_dir=target.weights_dir)
    outcome = train_job(job)
    if outcome.status == "completed" and outcome.model_path and model.multimodal.enabled:
        fit_mixtures_task(outcome.model_path, layout)  # Sec. 3: sampled at synthesis
    artifacts = publish_training_task(outcome, layout)
    require_model(outcome, f"training of {dataset!r}")
    registered = register_run_task(str(runs), dataset, model.name, config_hash, outcome.run_dir, outcome.model_path,
                                   outcome.dataset_fingerprint, outcome.steps, start, parent)
    result = TrainFlowResult(status=outcome.status, message=outcome.message, run_dir=outcome.run_dir,
                             model_path=outcome.model_path, steps=outcome.steps, artifacts=artifacts,
                             model=registered.reference)
    if params.mode != "retrain":
        return result
    challenge = challenge_step(ChallengeParams(dataset=dataset, run_dir=outcome.run_dir, gate=params.gate,
                                               data_root=str(root), runs_root=str(runs), weights_dir=target.weights_dir),
                               target)
    artifacts["decision"] = challenge.artifact_key
    return result.model_copy(update={"decision": challenge.outcome, "champion": challenge.champion,
                                     "reasons": challenge.reasons, "artifacts": artifacts})
