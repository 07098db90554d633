"""The training flow: a Ray Train run on a dataset's shards, and a scheduled-retraining mode.

Every completed run is registered with its lineage (storage/registry.py). Retraining fine-tunes the
champion of the same (dataset, config) — never another config's model — when the data or the config
changed since it was trained (a first model starts fresh, or from ``init_from``), then challenges it
(flows/challenge.py): one evaluation of both, the quality gate, promoted or rejected. Nothing to do
(a note) when the champion, or an earlier challenger from it, was already trained on this data and config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
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


def _given_model() -> ModelConfig | None:
    """The validated model config this flow run was handed (``train_step``'s ``model``), if any: what the run-name
    hooks read instead of loading ``params.config`` again."""
    context = FlowRunContext.get()
    model = (context.parameters or {}).get("model") if context is not None else None
    return model if isinstance(model, ModelConfig) else None


def _run_folder_name(params: TrainParams, model: ModelConfig | None = None) -> str:
    """The run folder's name: the user's, else one derived from the flow run (see ``default_run_name``) and
    the model config (``model``, else the one this flow run was handed, else the one ``params`` name)."""
    if params.run_name:
        return params.run_name
    model = model if model is not None else _given_model()
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
    model, init_from = _checked_request(params, target, model)
    plan = _plan(params, target, model, init_from)
    if plan.unchanged is not None:
        return plan.unchanged
    outcome = train_job(_job(params, target, model, plan.init_from), target.layout)
    if outcome.status == "completed" and outcome.model_path and model.multimodal.enabled:
        fit_mixtures_task(outcome.model_path, target.layout)  # Sec. 3: sampled at synthesis
    artifacts = publish_training_task(outcome, target.layout, model)
    require_model(outcome, f"training of {target.layout.dataset!r}")
    start, parent = _origin(params, plan.init_from)
    registered = register_run_task(str(target.runs), target.layout.dataset, model.name, plan.config_hash,
                                   outcome.run_dir, outcome.model_path, outcome.dataset_fingerprint, outcome.steps,
                                   start, parent)
    result = TrainFlowResult(status=outcome.status, message=outcome.message, run_dir=outcome.run_dir,
                             model_path=outcome.model_path, steps=outcome.steps, artifacts=artifacts,
                             model=registered.reference)
    return _challenge(params, target, result) if params.mode == "retrain" else result


def _checked_request(params: TrainParams, target: Target,
                     model: ModelConfig | None) -> tuple[ModelConfig, str | None]:
    """Refuses a wrong request before any Ray, local or cluster (exit 2 on the CLI): no manifest, a bad config,
    missing stage shards or label spaces, a wrong gate, a wrong ``init_from`` file. Returns the model config
    (``params``' when not given) and the validated ``init_from``."""
    logger, layout = get_run_logger(), target.layout
    if not layout.manifest_path.is_file():
        raise FileNotFoundError(f"dataset {layout.dataset!r} has no manifest at {layout.manifest_path}: "
                                "ingest it first")
    if model is None:
        model = load_model_config(params.config, params.config_set)
    require_stage_shards(layout, ("rgb", *input_stages(model)), "train", "training reads")
    require_label_spaces(layout, model.input.label_spaces, "train", f"model config {params.config!r} reads")
    if params.mode == "retrain":
        load_gate(params.gate)
    if not params.init_from:
        return model, None
    path, parts, notes = validate_init_from(params.init_from, model)
    logger.info("starting from the weights of %s (%s)", path, ", ".join(parts))
    if notes:
        logger.warning("%s computes differently from config %s in: %s", path, params.config, "; ".join(notes))
    return model, str(path)


@dataclass(frozen=True)
class _Plan:
    config_hash: str
    init_from: str | None  # a retrain's champion replaces the user's init_from
    unchanged: TrainFlowResult | None = None  # nothing to train: this is the flow's result


def _plan(params: TrainParams, target: Target, model: ModelConfig, init_from: str | None) -> _Plan:
    """What this run starts from, from the registry's decision (models/training/decision.py): a retrain or a
    rebuild on unchanged data and config trains nothing; a retrain fine-tunes its config's champion."""
    logger, layout = get_run_logger(), target.layout
    config_hash = canonical_hash(model.to_dict())
    if params.mode not in ("retrain", "rebuild"):
        return _Plan(config_hash, init_from)
    fingerprint = dataset_fingerprint(layout, input_stages(model))
    champion, same, note = training_decision(params.mode, sync(target.runs), layout.dataset, model.name, config_hash,
                                             fingerprint, init_from, params.max_steps, params.epochs)
    if same is not None:
        publish_markdown(artifact_key(params.mode, layout.dataset), note, f"{params.mode}: nothing to do")
        logger.info(note)
        return _Plan(config_hash, init_from, TrainFlowResult(
            status="unchanged", message=note, run_dir=same.run_dir, model_path=same.model_path, model=same.reference,
            champion=champion.reference if champion else None))
    if champion is None:
        return _Plan(config_hash, init_from)
    if init_from:
        logger.info("init_from %s is for a first model only: %s/%s has a champion", init_from, layout.dataset,
                    model.name)
    logger.info("data or config of %s/%s changed since champion %s: fine-tuning it", layout.dataset, model.name,
                champion.reference)  # its weights, new optimizers
    return _Plan(config_hash, str(validate_init_from(champion.model_path, model)[0]))


def _job(params: TrainParams, target: Target, model: ModelConfig, init_from: str | None) -> TrainJob:
    name = check_name(_run_folder_name(params, model), "run")
    return TrainJob(**{**settings_of(params, TrainSettings), "ray_address": target.ray_address, "init_from": init_from},
                    dataset=target.layout.dataset, data_root=str(target.layout.root), model=model,
                    run_dir=str(target.runs / name), resume_from=params.resume_from, weights_dir=target.weights_dir)


def _origin(params: TrainParams, init_from: str | None) -> tuple[str, str | None]:
    """How the run started, and from what, for its lineage."""
    if params.resume_from:
        return "resume-from", str(Path(params.resume_from).resolve())
    return ("init-from", init_from) if init_from else ("fresh", None)


def _challenge(params: TrainParams, target: Target, result: TrainFlowResult) -> TrainFlowResult:
    """A retrain's run against its champion (flows/challenge.py): promoted or rejected."""
    challenge = challenge_step(ChallengeParams(dataset=target.layout.dataset, run_dir=result.run_dir, gate=params.gate,
                                               data_root=str(target.layout.root), runs_root=str(target.runs),
                                               weights_dir=target.weights_dir), target)
    return result.model_copy(update={"decision": challenge.outcome, "champion": challenge.champion,
                                     "reasons": challenge.reasons,
                                     "artifacts": {**result.artifacts, "decision": challenge.artifact_key}})
