"""The full rebuild: videos (or the synthetic street) → stage shards → a trained model → its evaluation.

Each step is a subflow, so the UI shows the whole road and every step's own artifacts. Reruns skip
what is unchanged: ingest and preprocessing by shard fingerprints, training when the dataset and config
did not change (the last model is reused), evaluation when the model it would score was already scored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.evaluate import DEFAULT_METRICS, EvaluateParams, evaluate_flow
from flows.ingest import IngestParams, SynthParams, ingest_flow, synth_flow
from flows.preprocess import PreprocessParams, preprocess_flow
from flows.train import TrainParams, runs_root, train_flow
from models.preprocess.registry import BackendSettings, Stage
from models.training import input_stages
from models.vid2vid.config import load_model_config
from storage.ingest import IngestConfig
from storage.layout import data_root
from tasks.artifacts import artifact_key, publish_markdown


class RebuildParams(BaseModel):
    """The form a user fills in for a full rebuild (the Prefect UI shows it)."""

    src: str | None = Field(default=None, description="videos / frame folders to ingest; empty: the synthetic street")
    dataset: str = "street"
    data_root: str | None = None
    runs_root: str | None = None
    weights_dir: str | None = None
    config: str = Field(default="tiny", description="model preset (street, face, pose, tiny, tiny_face) or YAML path")
    stages: list[Stage] | None = Field(default=None, description="default: what the model trains on, plus flow")
    backends: dict[Stage, BackendSettings] = Field(
        default_factory=dict, description="per stage; default: the stage's default backend, or `dataset` "
                                          "for the synthetic street's exact labels and flow")
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    synth_clips: int = Field(default=4, ge=1)
    synth_frames: int = Field(default=24, ge=2)
    synth_size: tuple[int, int] = Field(default=(128, 64), description="(width, height) of synthetic clips")
    seed: int = 0
    workers: int = Field(default=2, ge=1, description="local Dask worker processes")
    dask_address: str | None = Field(default=None, description="default: $VID2VID_DASK_ADDRESS, else a local cluster")
    ray_address: str | None = Field(default=None, description="default: $VID2VID_RAY_ADDRESS, else a local Ray")
    train_workers: int = Field(default=2, ge=1)
    gpus_per_worker: float = Field(default=0.0, ge=0.0)
    max_steps: int | None = Field(default=30, ge=1)
    epochs: int | None = Field(default=None, ge=1)
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS))


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


def _earlier_evaluation(out: Path, run: str) -> list[dict[str, str]] | None:
    comparison = out / "comparison.json"
    if not comparison.is_file():
        return None
    table = json.loads(comparison.read_text())["table"]
    rows = [row for row in table if row["run"] == run]
    return rows or None


@flow(name="full-rebuild", log_prints=True)
def rebuild_flow(params: RebuildParams) -> RebuildResult:
    logger = get_run_logger()
    root = data_root(params.data_root).resolve()
    runs = runs_root(params.runs_root).resolve()
    synthetic = params.src is None
    keys: list[str] = []

    if synthetic:
        width, height = params.synth_size
        ingested = synth_flow(SynthParams(dataset=params.dataset, data_root=str(root), clips=params.synth_clips,
                                          frames=params.synth_frames, width=width, height=height, seed=params.seed))
    else:
        ingested = ingest_flow(IngestParams(src=params.src, dataset=params.dataset, data_root=str(root),
                                            config=params.ingest))
    keys.append(ingested.artifact_key)
    if not ingested.clips_ok:
        raise RuntimeError(f"nothing to rebuild: no clip of {params.src or 'the synthetic set'} was ingested "
                           f"({ingested.quarantined})")

    model = load_model_config(params.config).to_dict()
    stages = params.stages or list(input_stages(model))
    backends = dict(params.backends)
    if synthetic:  # the synthetic street carries exact labels and flow: validate them, never re-estimate
        for stage in ("semantic", "instance", "flow"):
            backends.setdefault(stage, BackendSettings(backend="dataset"))
    preprocessed = preprocess_flow(PreprocessParams(
        dataset=params.dataset, data_root=str(root), stages=stages, backends=backends, weights_dir=params.weights_dir,
        dask_address=params.dask_address or os.environ.get("VID2VID_DASK_ADDRESS"), workers=params.workers))
    keys.append(preprocessed.artifact_key)

    trained = train_flow(TrainParams(
        dataset=params.dataset, config=params.config, data_root=str(root), runs_root=str(runs), mode="rebuild",
        workers=params.train_workers, gpus_per_worker=params.gpus_per_worker, epochs=params.epochs,
        max_steps=params.max_steps, ray_address=params.ray_address, weights_dir=params.weights_dir))
    keys += list(trained.artifacts.values())
    if not trained.model_path:
        raise RuntimeError(f"training did not produce a model: {trained.message}")

    out = runs / "evaluations" / params.dataset
    run_name = Path(trained.run_dir or trained.model_path).name
    earlier = _earlier_evaluation(out, run_name) if trained.status == "unchanged" else None
    if earlier is not None:
        logger.info("model %s was already evaluated on %s: keeping that evaluation", run_name, params.dataset)
        table, evaluation_json = earlier, str(out / "comparison.json")
    else:
        evaluation = evaluate_flow(EvaluateParams(dataset=params.dataset, runs=[trained.run_dir or trained.model_path],
                                                  metrics=params.metrics, data_root=str(root), runs_root=str(runs),
                                                  weights_dir=params.weights_dir))
        table, evaluation_json = evaluation.table[:1], evaluation.json_path
        keys += evaluation.artifact_keys

    summary = "\n".join([
        f"## Full rebuild of `{params.dataset}`", "",
        f"- **data**: {ingested.clips_ok} clip(s), {ingested.frames} frames under `{root / params.dataset}`; "
        f"{len(ingested.quarantined)} quarantined" + "".join(f"\n  - `{c}`: {r}" for c, r in ingested.quarantined.items()),
        f"- **preprocess**: stages {', '.join(stages)} (artifact `{preprocessed.artifact_key}`)",
        f"- **train**: {trained.status}: {trained.message}",
        f"- **evaluate**: {'kept the earlier evaluation' if earlier is not None else 'evaluated'}: "
        + ", ".join(f"{k} = {v}" for k, v in (table[0] if table else {}).items() if k not in ("run", "evaluated")),
        "", "Artifacts: " + ", ".join(f"`{k}`" for k in keys),
    ])
    keys.append(publish_markdown(artifact_key("rebuild", params.dataset), summary, "what the full rebuild did"))
    return RebuildResult(dataset=params.dataset, data_root=str(root), clips_ok=ingested.clips_ok,
                         quarantined=ingested.quarantined, preprocess_artifact=preprocessed.artifact_key,
                         train_status=trained.status, run_dir=trained.run_dir, model_path=trained.model_path,
                         evaluation=table, evaluation_json=evaluation_json, evaluation_skipped=earlier is not None,
                         artifact_keys=keys)
