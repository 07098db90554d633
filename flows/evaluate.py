"""The evaluation flow: several trained runs on one dataset's held-out clips, one comparison table.

Like the paper's Table 1/2: each run (full model, ablations, the frame-by-frame baseline) is synthesized
on every validation clip at full length and scored; earlier evaluations' numbers are shown beside the
new ones. Videos and the table (JSON) are written to the output folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import quote

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field, field_validator

from flows.naming import dataset_tag, run_name
from flows.params import FlowParams
from models.gate import protocol
from models.metrics.names import DEFAULT_METRICS, SCORED_FROM, metric_names
from storage import locations
from review.settings import review_page
from storage.atomic import atomic_write_bytes
from storage.layout import DatasetLayout
from storage.fingerprint import canonical_hash
from storage.manifest import read_manifest
from storage.registry import is_reference, sync
from models.metrics.table import ScoredRun, comparison_rows, notes
from storage.shards import read_meta
from models.metric_display import header, markdown_table
from tasks.artifacts import artifact_key, data_uri, md_text, publish_markdown
from tasks.progress import collect
from tasks.registry import record_metrics_task
from tasks.evaluate import RunEvaluation, evaluate_run_task, frame_grid_png, gif_preview


class EvaluateSettings(FlowParams):
    """What to score (the full rebuild holds these as they are)."""

    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS),
                               description=f"any of {', '.join(DEFAULT_METRICS)}")
    split: str = Field(default="val", description="clips to evaluate; falls back to every clip when the split is empty")

    @field_validator("metrics")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        metric_names(value)  # refused here, before any work
        return value


class EvaluateParams(EvaluateSettings):
    dataset: str = Field(description="the dataset's name under the data root")
    runs: list[str] = Field(description="run names under the runs root, run folders, model files or registry "
                                        "references (street/tiny@champion)")
    data_root: str | None = Field(default=None, description="default: $VID2VID_DATA_ROOT or ./data")
    runs_root: str | None = Field(default=None, description="default: $VID2VID_RUNS_ROOT or ./runs")
    weights_dir: str | None = Field(default=None, description="default: $VID2VID_WEIGHTS_DIR or ./weights")
    out_dir: str | None = Field(default=None, description="default: <runs_root>/evaluations/<dataset>")


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


@flow(name="evaluate", log_prints=True, flow_run_name=run_name("evaluate", EvaluateParams, _describe, _tags))
def evaluate_flow(params: EvaluateParams) -> EvaluationResult:
    logger = get_run_logger()
    if not params.runs:  # the deployment's default form: refuse rather than publish an empty table over the last one
        raise ValueError("no runs to evaluate: set params.runs to one or more run names (e.g. [\"RUN_A\", \"RUN_B\"])")
    metrics = metric_names(params.metrics)
    layout = DatasetLayout.open(params.dataset, params.data_root)
    records = [r for r in read_manifest(layout) if r.status == "ok"]
    clips = [r.clip_id for r in records if r.split == params.split] or [r.clip_id for r in records]
    # each FID's floor: real frames of as many other (training) clips, so both sides rest on similar sample counts
    reference_clips = [r.clip_id for r in records if r.clip_id not in clips][: len(clips)]
    if not clips:
        raise FileNotFoundError(f"dataset {layout.dataset!r} has no usable clips to evaluate")
    root = locations.runs_root(params.runs_root).resolve()
    out = Path(params.out_dir) if params.out_dir else root / "evaluations" / layout.dataset
    out.mkdir(parents=True, exist_ok=True)
    models = [resolve_model(run, root) for run in params.runs]
    futures = [evaluate_run_task.submit(name, model, str(layout.root), layout.dataset, clips, str(out), metrics,
                                        params.weights_dir, str(out / "stats-cache"), reference_clips)
               for name, model in models]
    evaluations = collect(futures, f"evaluate {layout.dataset}", "runs")

    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    history_path = out / "history.jsonl"
    earlier = [json.loads(line) for line in history_path.read_text().splitlines()] if history_path.is_file() else []
    data = evaluation_data_fingerprint(layout, clips)
    registry, how = sync(root), protocol(metrics, params.split)
    for e in evaluations:  # a registered model keeps its held-out numbers, with how and on what they were computed
        if (registered := registry.by_model_path(e.model_path)) is not None:
            record_metrics_task(str(root), registered.id, str(out), data, how, e.values)
    scored_runs = [ScoredRun(e.run, e.variant, e.values, e.details, len(e.clips), e.config) for e in evaluations]
    table = [{**row, "data": data}
             for row in comparison_rows(scored_runs, metrics, evaluations[0].references if evaluations else {}, stamp)]
    description = notes(scored_runs, metrics, evaluations[0].references if evaluations else {})
    for e in evaluations:  # official-semantics models start from L real frames (NVIDIA's test.py), not one
        given = max((c.seed_frames for c in e.clips), default=0)
        if given > SCORED_FROM:
            description.append(f"⚠ `{e.run}` follows NVIDIA's test semantics: its frames 0..{given - 1} are the real "
                               f"frames it starts from, so frames {SCORED_FROM}..{given - 1} of its scored range are real.")
    current = [row for row in table if row["run"] != "—"]
    shown = {e.run for e in evaluations}
    stale: list[dict[str, str]] = []
    for row in reversed(earlier):  # the latest earlier numbers of runs not evaluated now
        if row.get("run") not in shown and "method" in row:
            shown.add(row["run"])
            row = {**{k: str(row.get(k, "")) for k in table[0]}, "evaluated": f"{row['evaluated']} (earlier)"}
            if row.get("data") == data:  # side by side only when computed on the same clips and frames
                table.append(row)
            else:
                stale.append({**row, "stale": "computed on other data"})
    with open(history_path, "a") as handle:
        for row in current:
            handle.write(json.dumps(row) + "\n")
    json_path = out / "comparison.json"
    atomic_write_bytes(json_path, json.dumps({"dataset": layout.dataset, "metrics": metrics, "data": data,
                                              "table": table, "stale": stale, "notes": description,
                                              "evaluations": [e.model_dump() for e in evaluations]}, indent=2).encode())

    latest = out == root / "evaluations" / layout.dataset
    review = review_page("d", layout.dataset, "e", "latest" if latest else out.name)
    # the artifact: readable headers (unit, better direction), narrow enough for 1280 px; provenance folded
    shown = [k for k in table[0] if k not in ("config", "data")] if table else []
    readable = [{header(k) if k in metrics else k: row.get(k, "") for k in shown} for row in table]
    provenance = description + [f"data fingerprint `{data}`; configs: "
                                + ", ".join(sorted({f"{r['run']}: {r['config']}" for r in current})),
                                f"table as JSON: `{json_path}`"]
    keys = [publish_markdown(artifact_key("evaluate", layout.dataset),
                             f"### Evaluation on {md_text(layout.dataset)}\n\n" + markdown_table(readable),
                             f"Evaluation of {len(evaluations)} run(s) on `{md_text(layout.dataset)}` ({len(clips)} "
                             f"clip(s), split `{params.split}`). [Videos, runs side by side, the paper's table]({review})."
                             + (f" {len(stale)} earlier row(s) computed on other data are left out (stale: "
                                f"{', '.join(md_text(r['run']) for r in stale)})." if stale else "")
                             + "\n\n<details><summary>Provenance: protocol, weights (sha256), samples</summary>\n\n"
                             + "\n".join(f"- {line}" for line in provenance) + "\n\n</details>")]
    grid = frame_grid_png(evaluations)
    lines = [f"### Synthesized videos ({md_text(layout.dataset)})", "",
             f"[Play them in the review app]({review}): every clip, two runs side by side, preference studies.", ""]
    if grid:
        lines += ["Source | synthesized | real of each run's first clip: its first, middle and last scored frames:",
                  "", f"![frame grid]({data_uri(grid)})", ""]
    first = evaluations[0].clips[0] if evaluations and evaluations[0].clips else None
    if first and first.side_by_side:
        lines += [f"Animated preview of {md_text(evaluations[0].run)} / {md_text(first.clip_id)}:", "",
                  f"![preview]({data_uri(gif_preview(first.side_by_side), 'image/gif')})", ""]
    # where the runs folder is served over HTTP: $VID2VID_OUTPUTS_URL, else the review app's file route
    base_url = os.environ.get("VID2VID_OUTPUTS_URL") or review_page("media")
    for evaluation in evaluations:
        for clip in evaluation.clips:
            for video in filter(None, (clip.video, clip.side_by_side)):
                relative = Path(video).resolve().relative_to(root) if Path(video).resolve().is_relative_to(root) else None
                target = f"{base_url.rstrip('/')}/{quote(str(relative))}" if base_url and relative else quote(video)
                lines.append(f"- [{md_text(evaluation.run)} / {md_text(Path(video).name)}]({target})")
    keys.append(publish_markdown(artifact_key("evaluate", layout.dataset, "videos"), "\n".join(lines),
                                 "synthesized videos and frame grid"))
    if latest:  # the paper's table: this evaluation with every preference study of its runs
        from review.commands import paper_markdown
        from review.publish import paper_artifact_key

        try:
            text = paper_markdown(root, layout.dataset)
        except Exception as exc:  # noqa: BLE001 - the studies' database is optional here; the table is not
            logger.warning("the paper's table has no preference column: the studies database is unreadable (%s)", exc)
            text = None
        if text:
            keys.append(publish_markdown(paper_artifact_key(layout.dataset), text,
                                         f"the paper's table for {layout.dataset}: methods × metrics and human "
                                         "preference, with sources"))
    for row in table:
        logger.info("%s", row)
    for line in description:
        logger.info("%s", line)
    return EvaluationResult(dataset=layout.dataset, out_dir=str(out), table=table, evaluations=evaluations,
                            json_path=str(json_path), artifact_keys=keys, notes=description)
