"""Prefect tasks that write down and publish an evaluation: the comparison (JSON and history, beside the
videos) and its artifacts (the readable table, the videos with a frame grid and a preview). The paper's table, which reads the review app's studies, is
published by the flow (tasks never import ``review/``).
The evaluate flow calls them after scoring; the rules of the table are ``models/metrics/table.py``'s."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import quote

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.metric_display import header, markdown_table
from models.metrics.table import Comparison, ScoredRun, compare_runs
from storage.atomic import atomic_write_bytes
from storage.links import review_page
from tasks.artifacts import artifact_key, data_uri, md_text, publish_markdown
from tasks.evaluate import RunEvaluation, frame_grid_png, gif_preview

HISTORY_FILE = "history.jsonl"
COMPARISON_FILE = "comparison.json"


@task(name="record-comparison", cache_policy=NO_CACHE)
def record_comparison_task(evaluations: list[RunEvaluation], metrics: list[str], data: str, dataset: str,
                           out_dir: str) -> tuple[Comparison, str]:
    """This evaluation beside the earlier ones of the folder; appends its rows to the history and writes the
    comparison's JSON (atomically). Returns the comparison and the JSON's path."""
    out = Path(out_dir)
    history = out / HISTORY_FILE
    earlier = [json.loads(line) for line in history.read_text().splitlines()] if history.is_file() else []
    runs = [ScoredRun(e.run, e.variant, e.values, e.details, len(e.clips), e.config) for e in evaluations]
    comparison = compare_runs(runs, metrics, evaluations[0].references if evaluations else {},
                              time.strftime("%Y-%m-%d %H:%M:%S"), data, earlier,
                              {e.run: max((c.seed_frames for c in e.clips), default=0) for e in evaluations})
    with open(history, "a") as handle:
        for row in comparison.current:
            handle.write(json.dumps(row) + "\n")
    json_path = out / COMPARISON_FILE
    atomic_write_bytes(json_path, json.dumps({"dataset": dataset, "metrics": metrics, "data": data,
                                              "table": comparison.table, "stale": comparison.stale,
                                              "notes": comparison.notes,
                                              "evaluations": [e.model_dump() for e in evaluations]}, indent=2).encode())
    return comparison, str(json_path)


def _table_markdown(comparison: Comparison, evaluations: list[RunEvaluation], metrics: list[str], data: str,
                    json_path: str, dataset: str, clips: int, split: str, review: str) -> tuple[str, str]:
    """(table, description) of the evaluation artifact: readable headers (unit, better direction), narrow
    enough for 1280 px; provenance folded."""
    table = comparison.table
    shown = [k for k in table[0] if k not in ("config", "data")] if table else []
    readable = [{header(k) if k in metrics else k: row.get(k, "") for k in shown} for row in table]
    provenance = comparison.notes + [f"data fingerprint `{data}`; configs: "
                                     + ", ".join(sorted({f"{r['run']}: {r['config']}" for r in comparison.current})),
                                     f"table as JSON: `{json_path}`"]
    stale = comparison.stale
    description = (f"Evaluation of {len(evaluations)} run(s) on `{md_text(dataset)}` ({clips} clip(s), split "
                   f"`{split}`). [Videos, runs side by side, the paper's table]({review})."
                   + (f" {len(stale)} earlier row(s) computed on other data are left out (stale: "
                      f"{', '.join(md_text(r['run']) for r in stale)})." if stale else "")
                   + "\n\n<details><summary>Provenance: protocol, weights (sha256), samples</summary>\n\n"
                   + "\n".join(f"- {line}" for line in provenance) + "\n\n</details>")
    return f"### Evaluation on {md_text(dataset)}\n\n" + markdown_table(readable), description


def _videos_markdown(evaluations: list[RunEvaluation], dataset: str, root: Path, review: str) -> str:
    """The synthesized videos: a frame grid, an animated preview of the first clip, a link per video."""
    lines = [f"### Synthesized videos ({md_text(dataset)})", "",
             f"[Play them in the review app]({review}): every clip, two runs side by side, preference studies.", ""]
    grid = frame_grid_png(evaluations)
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
    return "\n".join(lines)


@task(name="publish-evaluation-artifacts", cache_policy=NO_CACHE)
def publish_evaluation_task(comparison: Comparison, evaluations: list[RunEvaluation], metrics: list[str], data: str,
                            json_path: str, dataset: str, runs_root: str, out_dir: str, clips: int,
                            split: str) -> list[str]:
    """The evaluation's table and videos artifacts; returns their keys."""
    root, out = Path(runs_root), Path(out_dir)
    latest = out == root / "evaluations" / dataset
    review = review_page("d", dataset, "e", "latest" if latest else out.name)
    table, description = _table_markdown(comparison, evaluations, metrics, data, json_path, dataset, clips, split, review)
    keys = [publish_markdown(artifact_key("evaluate", dataset), table, description),
            publish_markdown(artifact_key("evaluate", dataset, "videos"), _videos_markdown(evaluations, dataset, root, review),
                             "synthesized videos and frame grid")]
    return keys
