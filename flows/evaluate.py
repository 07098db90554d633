"""The evaluation flow: several trained runs on one dataset's held-out clips, one comparison table.

Like the paper's Table 1/2: each run (full model, ablations, the frame-by-frame baseline) is synthesized
on every validation clip at full length and scored; earlier evaluations' numbers are shown beside the
new ones. Videos and the table (JSON) are written to the output folder.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel

from flows.forms import EvaluateParams, EvaluateSettings  # noqa: F401 - EvaluateSettings: imported from here too
from flows.naming import dataset_tag, run_name
from models.gate import protocol
from models.metrics.names import metric_names
from models.metrics.split import evaluation_clips
from storage.layout import DatasetLayout
from storage.fingerprint import canonical_hash
from storage.manifest import read_manifest
from storage.registry import is_reference, sync
from storage.shards import read_meta
from storage.target import Target, resolve_target
from tasks.artifacts import publish_markdown
from tasks.progress import collect
from tasks.registry import record_metrics_task
from tasks.evaluate import RunEvaluation, evaluate_run_task
from tasks.evaluate_publish import publish_evaluation_task, record_comparison_task


class EvaluationResult(BaseModel):
    dataset: str
    out_dir: str
    table: list[dict[str, str]]
    evaluations: list[RunEvaluation]
    json_path: str
    artifact_keys: list[str]
    notes: list[str] = []


def resolve_model(run: str, root: Path) -> tuple[str, str]:
    """(run name, model file) from a run name, a run folder, a model file a registry reference (``street/tiny@champion``) or a shipped model (``reference:street``
    → run ``reference-street``, its file checked against its card's sha256)."""
    if run.startswith("reference:"):
        from models.reference.registry import resolve_model_file

        return f"reference-{run.removeprefix('reference:')}", str(resolve_model_file(run).resolve())
    if is_reference(run):
        model = sync(root).resolve(run)
        return model.run_name, model.model_path
    path = Path(run)
    candidates = [path] if path.suffix == ".pt" else [path / "model.pt", root / run / "model.pt"]
    for candidate in candidates:
        if candidate.is_file():
            name = candidate.parent.name if candidate.name == "model.pt" else candidate.stem
            return name, str(candidate.resolve())
    raise FileNotFoundError(f"run {run!r} has no exported model (looked for {', '.join(map(str, candidates))})")


def evaluation_data_fingerprint(layout: DatasetLayout, clips: list[str]) -> str:
    """What the numbers were computed on: the evaluated clips' rgb shards (the real frames every metric
    compares against) and their manifest entries. Rows with another fingerprint are not comparable."""
    records = {r.clip_id: r for r in read_manifest(layout)}
    parts = []
    for clip in sorted(clips):
        meta = read_meta(layout.shard_path("rgb", clip))
        parts.append(f"{clip}:{records[clip].n_frames}:{meta.fingerprint if meta else 'unreadable'}")
    return canonical_hash(parts)[:12]


def _describe(params: EvaluateParams) -> str:
    return f"{params.dataset} {len(params.runs)} run{'' if len(params.runs) == 1 else 's'}"


def _tags(params: EvaluateParams) -> list[str]:
    return [*dataset_tag(params), *(f"run:{Path(run).name}" for run in params.runs)]


def _publish_paper_table(root: Path, dataset: str) -> list[str]:
    """The paper's table artifact: the latest evaluation with every preference study of its runs."""
    from review.commands import paper_markdown
    from review.publish import paper_artifact_key

    try:
        text = paper_markdown(root, dataset)
    except Exception as exc:  # noqa: BLE001 - the studies' database is optional here; the table is not
        get_run_logger().warning("the paper's table has no preference column: the studies database is unreadable (%s)",
                                 exc)
        return []
    if not text:
        return []
    return [publish_markdown(paper_artifact_key(dataset), text, f"the paper's table for {dataset}: methods × metrics "
                             "and human preference, with sources")]


_NAME = run_name("evaluate", EvaluateParams, _describe, _tags)


@flow(name="evaluate", log_prints=True, flow_run_name=_NAME)
def evaluate_flow(params: EvaluateParams) -> EvaluationResult:
    """The deployment's and the CLI's entry: resolves the target, then runs the shared body."""
    return evaluate(params, resolve_target(params.dataset, params.data_root, params.runs_root, params.weights_dir))


@flow(name="evaluate", log_prints=True, flow_run_name=_NAME)
def evaluate_step(params: EvaluateParams, target: Target) -> EvaluationResult:
    """The same flow as a step of a caller that resolved the target already (the full rebuild)."""
    return evaluate(params, target)


def evaluate(params: EvaluateParams, target: Target) -> EvaluationResult:
    """The body of the evaluate flow: ``params.runs`` scored on ``target``'s dataset."""
    if not params.runs:  # the deployment's default form: refuse rather than publish an empty table over the last one
        raise ValueError("no runs to evaluate: set params.runs to one or more run names (e.g. [\"RUN_A\", \"RUN_B\"])")
    metrics = metric_names(params.metrics)
    layout, root = target.layout, target.runs
    clips, reference_clips = evaluation_clips(layout, params.split)
    out = Path(params.out_dir) if params.out_dir else root / "evaluations" / layout.dataset
    out.mkdir(parents=True, exist_ok=True)
    evaluations = _score(params, target, metrics, clips, reference_clips, out)
    data = evaluation_data_fingerprint(layout, clips)
    _record_registered(root, evaluations, out, data, protocol(metrics, params.split))
    comparison, json_path = record_comparison_task(evaluations, metrics, data, layout.dataset, str(out))
    keys = publish_evaluation_task(comparison, evaluations, metrics, data, json_path, layout.dataset, str(root),
                                   str(out), len(clips), params.split)
    if out == root / "evaluations" / layout.dataset:  # the dataset's latest evaluation: the paper's table too
        keys += _publish_paper_table(root, layout.dataset)
    _log(comparison.table, comparison.notes)
    return EvaluationResult(dataset=layout.dataset, out_dir=str(out), table=comparison.table, evaluations=evaluations,
                            json_path=str(json_path), artifact_keys=keys, notes=comparison.notes)


def _score(params: EvaluateParams, target: Target, metrics: list[str], clips: list[str], reference_clips: list[str],
           out: Path) -> list[RunEvaluation]:
    """Every run synthesized on ``clips`` and scored, one task each, in the order given."""
    models = [resolve_model(run, target.runs) for run in params.runs]
    futures = [evaluate_run_task.submit(name, model, target.layout, clips, str(out), metrics,
                                        target.weights_dir, str(out / "stats-cache"), reference_clips)
               for name, model in models]
    return collect(futures, f"evaluate {target.layout.dataset}", "runs")


def _record_registered(root: Path, evaluations: list[RunEvaluation], out: Path, data: str, how: str) -> None:
    """A registered model keeps its held-out numbers, with how and on what they were computed."""
    registry = sync(root)
    for e in evaluations:
        if (registered := registry.by_model_path(e.model_path)) is not None:
            record_metrics_task(str(root), registered.id, str(out), data, how, e.values)


def _log(table: list[dict[str, str]], notes: list[str]) -> None:
    logger = get_run_logger()
    for row in table:
        logger.info("%s", row)
    for line in notes:
        logger.info("%s", line)
