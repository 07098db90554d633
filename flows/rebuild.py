"""The full rebuild: videos (or the synthetic street) → stage shards → a trained model → its evaluation.

Each step is a subflow, so the UI shows the whole road and every step's own artifacts. The target (dataset
layout, runs root, weights) and the model config are resolved once, here, and handed to each step's body
(``ingest_step`` ... ``evaluate_step``: the same flows as the steps' own deployments, which resolve for
themselves). Reruns skip
what is unchanged: ingest and preprocessing by shard fingerprints, training when the dataset and config
did not change (the last model is reused), evaluation when the model it would score was already scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.evaluate import EvaluateParams, EvaluateSettings, evaluate_step
from flows.ingest import IngestParams, IngestSummary, SynthParams, SynthSettings, ingest_step, synth_step
from flows.naming import dataset_tag, run_name
from flows.forms import ModelTarget
from flows.params import compose
from flows.preprocess import PreprocessParams, PreprocessSettings, preprocess_step
from flows.train import TrainFlowResult, TrainParams, train_step
from models.preprocess.registry import BackendSettings
from models.training import TrainSettings, input_stages
from models.vid2vid.config import load_model_config
from storage.ingest import IngestConfig
from storage.evaluations import COMPARISON_FILE, evaluated_rows
from storage.target import Target, resolve_target
from tasks.rebuild import publish_rebuild_task


class RebuildParams(ModelTarget):
    """The form a user fills in for a full rebuild (the Prefect UI shows it): the target (``ModelTarget``, as a
    training run's), then each step's own settings, held as the step's flow takes them."""

    src: str | None = Field(default=None, description="videos / frame folders to ingest; empty: the synthetic street")
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="how source videos are ingested")
    synth: SynthSettings = Field(default_factory=lambda: SynthSettings(frames=24, size=(128, 64)),
                                 description="the synthetic street, when there is no src")
    preprocess: PreprocessSettings = Field(
        default_factory=PreprocessSettings, description="stages default to what the model trains on, plus flow; "
                                                        "the synthetic street's exact labels and flow are validated")
    train: TrainSettings = Field(default_factory=lambda: TrainSettings(max_steps=30),
                                 description="training settings; the rebuild trains 30 steps unless told otherwise")
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings, description="what the evaluation scores")


class RebuildResult(BaseModel):
    dataset: str
    data_root: str
    clips_ok: int
    quarantined: dict[str, str]
    preprocess_artifact: str
    train_status: str
    run_dir: str | None
    model_path: str | None
    evaluation: list[dict[str, str]]
    evaluation_json: str | None
    evaluation_skipped: bool
    artifact_keys: list[str]


@dataclass(frozen=True)
class _Evaluation:
    table: list[dict[str, str]]  # the trained model's row
    json_path: str | None
    kept: bool  # the earlier evaluation of an unchanged model, kept
    artifact_keys: list[str]  # the versions this rebuild published (none when kept)


_NAME = run_name("rebuild", RebuildParams, lambda p: f"{p.dataset} {Path(p.config).stem}",
                 lambda p: [*dataset_tag(p), f"config:{Path(p.config).stem}"])


@flow(name="full-rebuild", log_prints=True, flow_run_name=_NAME)
def rebuild_flow(params: RebuildParams) -> RebuildResult:
    """Ingest → preprocess → train → evaluate → publish, on the target and model config resolved once."""
    resolved = resolve_target(params.dataset, params.data_root, params.runs_root, params.weights_dir,
                              dask_address=params.preprocess.dask_address, ray_address=params.train.ray_address)
    target = {"dataset": params.dataset, "data_root": str(resolved.root)}  # each step's form says where it ran
    ingested = _ingest(params, resolved, target)  # a failed ingest fails the rebuild here, with its reason
    model = load_model_config(params.config, params.config_set)  # validated once: training takes this object
    stages = params.preprocess.stages or list(input_stages(model))
    preprocessed = preprocess_step(_preprocess_params(params, stages, target), resolved)
    trained = train_step(compose(TrainParams, params.train, config=params.config, config_set=params.config_set,
                                 runs_root=str(resolved.runs), mode="rebuild", weights_dir=params.weights_dir,
                                 **target), resolved, model)
    evaluated = _evaluate(params, resolved, target, trained)
    keys = [ingested.artifact_key, preprocessed.artifact_key, *trained.artifacts.values(), *evaluated.artifact_keys]
    keys.append(publish_rebuild_task(params.dataset, str(resolved.root), ingested, stages, preprocessed, trained,
                                     evaluated.table, evaluated.kept, keys))
    return RebuildResult(dataset=params.dataset, data_root=str(resolved.root), clips_ok=ingested.clips_ok,
                         quarantined=ingested.quarantined, preprocess_artifact=preprocessed.artifact_key,
                         train_status=trained.status, run_dir=trained.run_dir, model_path=trained.model_path,
                         evaluation=evaluated.table, evaluation_json=evaluated.json_path,
                         evaluation_skipped=evaluated.kept, artifact_keys=keys)


def _ingest(params: RebuildParams, resolved: Target, target: dict[str, str]) -> IngestSummary:
    """The synthetic street when there is no ``src``, else the user's videos."""
    if params.src is None:
        return synth_step(compose(SynthParams, params.synth, **target), resolved)
    return ingest_step(IngestParams(src=params.src, config=params.ingest, **target), resolved)


def _preprocess_params(params: RebuildParams, stages: list[str], target: dict[str, str]) -> PreprocessParams:
    backends = dict(params.preprocess.backends)
    if params.src is None:  # the synthetic street carries exact labels and flow: validate them, never re-estimate
        for stage in ("semantic", "instance", "flow"):
            backends.setdefault(stage, BackendSettings(backend="dataset"))
    return compose(PreprocessParams, params.preprocess, stages=stages, backends=backends,
                   weights_dir=params.weights_dir, **target)


def _evaluate(params: RebuildParams, resolved: Target, target: dict[str, str],
              trained: TrainFlowResult) -> _Evaluation:
    """The trained model's evaluation; an unchanged model that was evaluated already keeps that evaluation."""
    out = resolved.runs / "evaluations" / params.dataset
    name = Path(trained.run_dir or trained.model_path).name
    earlier = evaluated_rows(out, name) if trained.status == "unchanged" else None
    if earlier is not None:
        get_run_logger().info("model %s was already evaluated on %s: keeping that evaluation", name, params.dataset)
        return _Evaluation(earlier, str(out / COMPARISON_FILE), True, [])
    evaluation = evaluate_step(compose(EvaluateParams, params.evaluate, runs=[trained.run_dir or trained.model_path],
                                       runs_root=str(resolved.runs), weights_dir=params.weights_dir, **target), resolved)
    return _Evaluation(evaluation.table[:1], evaluation.json_path, False, evaluation.artifact_keys)
