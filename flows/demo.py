"""`make demo`: the full rebuild on the synthetic street (vid2vid), its frame-by-frame baseline trained with
the same budget, both evaluated side by side (the paper's Table 1 layout), the real face clip, and the
demo's goals with the numbers that meet or miss them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from prefect import flow

from flows.demo_reference import demo_reference_flow
from flows.evaluate import EvaluateParams, EvaluateSettings, evaluate_flow
from flows.face_demo import face_demo
from flows.rebuild import RebuildParams, rebuild_flow
from flows.ingest import SynthSettings
from flows.naming import templated
from flows.train import TrainParams, train_flow
from models.metrics.goals import Goal, demo_goals, demo_time_goal
from models.metrics.names import DEFAULT_METRICS
from models.training.job import TrainSettings
from storage.locations import data_root, runs_root
from flows.server import temporary_api
from tasks.artifacts import artifact_key, publish_markdown

DEMO_CONFIG = "demo_street"  # configs/model/demo_street.yaml: 128x64, one scale
BASELINE_CONFIG = "demo_street_frame"  # its frame-by-frame twin
# per model, 2 Ray workers (batch 2). Measured on the idle 2-core machine (the whole demo, float32): 80 steps 459 s,
# 56 steps 373 s (≈ 2.1 s per step and ≈ 20 s of Ray start-up per model, ≈ 95 s for the rest). Training now runs in
# bf16 + channels-last (models/training/precision.py), measured 1.4x-2.0x per step on the loaded shared machine
# (benchmarks/model.py --mode train, interleaved), and NVIDIA's recipe adds ≈ 10 % to vid2vid's step. At the
# cautious 1.4x: 64 x (1.5 x 1.1 + 1.5) s + 2 x 20 s + 95 s ≈ 337 s. An estimate from step times: the shared
# machine could not time the whole demo.
DEMO_STEPS = 64
DEMO_DIAGNOSE_EVERY = 16  # held-out diagnostics (TensorBoard, progress artifact): ≈ 1 s each
DEMO_CLIPS, DEMO_FRAMES, DEMO_SIZE = 8, 24, (128, 64)  # 6 training clips, 2 held out
REBUILD_METRICS = ["warp", "psnr", "ssim"]  # the full set runs once, on both models, in the comparison


def _train_seconds(run_dir: str | None) -> float | None:
    summary = Path(run_dir or "") / "summary.json"
    return json.loads(summary.read_text()).get("seconds") if summary.is_file() else None


@flow(name="demo-comparison", flow_run_name=templated("demo comparison {steps} steps each"), log_prints=True)
def demo_comparison_flow(root: str, runs: str, vid2vid_run: str, steps: int, started: float) -> dict:
    """The frame-by-frame baseline with the same budget, then both models in one table, then the goals."""
    baseline = train_flow(TrainParams(dataset="street", config=BASELINE_CONFIG, data_root=root, runs_root=runs,
                                      mode="rebuild", max_steps=steps, checkpoint_every=steps,
                                      diagnose_every=DEMO_DIAGNOSE_EVERY))
    evaluation = evaluate_flow(EvaluateParams(dataset="street", runs=[vid2vid_run, baseline.run_dir or ""],
                                              metrics=list(DEFAULT_METRICS), data_root=root, runs_root=runs))
    by_variant = {e.variant: e.values for e in evaluation.evaluations}
    seconds = {"vid2vid": _train_seconds(vid2vid_run), "baseline": _train_seconds(baseline.run_dir)}
    goals = demo_goals(by_variant.get("vid2vid", {}), by_variant.get("frame-by-frame baseline", {}), None)
    budget = (f"training budget: {steps} steps x 2 workers per model; vid2vid {seconds['vid2vid'] or 0:.0f} s, "
              f"baseline {seconds['baseline'] or 0:.0f} s of training")
    return {"table": evaluation.table, "notes": evaluation.notes, "goals": [g.line() for g in goals],
            "budget": budget, "json": evaluation.json_path, "artifacts": evaluation.artifact_keys,
            "baseline_run": baseline.run_dir, "baseline_status": baseline.status}


def publish_demo_goals(comparison: dict, time_goal: Goal) -> str:
    """The demo's goals artifact, written once every part has run (its time goal is the whole demo's)."""
    lines = ["## Demo goals", "", *[f"- {g}" for g in comparison["goals"]], f"- {time_goal.line()}", "",
             f"- {comparison['budget']}",
             f"- comparison table: artifact `{artifact_key('evaluate', 'street')}`, JSON `{comparison['json']}`"]
    return publish_markdown(artifact_key("demo", "goals"), "\n".join(lines), "the demo's goals, met or missed")


@flow(name="demo", flow_run_name=templated("demo {steps} steps"), log_prints=True)
def demo_flow(root: str, runs: str, steps: int, started: float) -> tuple:
    """The whole demo as one run in the UI, its parts as sub-runs: the street rebuild, the face clip, the
    comparison with the baseline, the shipped reference models."""
    street = rebuild_flow(RebuildParams(
        data_root=root, runs_root=runs, config=DEMO_CONFIG,
        synth=SynthSettings(clips=DEMO_CLIPS, frames=DEMO_FRAMES, size=DEMO_SIZE),
        train=TrainSettings(max_steps=steps, diagnose_every=DEMO_DIAGNOSE_EVERY),
        evaluate=EvaluateSettings(metrics=REBUILD_METRICS)))
    face = face_demo(root, dataset="face")
    comparison = demo_comparison_flow(root, runs, street.run_dir or street.model_path or "", steps, started)
    reference = demo_reference_flow(root, runs, comparison["json"], steps)  # the shipped models
    reused = "unchanged" in (street.train_status, comparison["baseline_status"])
    time_goal = demo_time_goal(time.perf_counter() - started, reused)
    comparison["artifacts"].append(publish_demo_goals(comparison, time_goal))
    comparison["goals"].append(time_goal.line())
    return street, face, comparison, reference


def run_demo(root_override: str | None = None, runs_override: str | None = None, steps: int = DEMO_STEPS) -> int:
    started = time.perf_counter()
    root = data_root(root_override).resolve()
    runs = runs_root(runs_override).resolve()
    street, face, comparison, reference = demo_flow(str(root), str(runs), steps, started)
    api = os.environ.get("PREFECT_API_URL")
    api = None if api == temporary_api() else api  # this command's own server ends with it: point at `make ui`
    sketch = face.stages["sketch"]
    columns = list(comparison["table"][0]) if comparison["table"] else []
    metric_columns = [c for c in columns if c not in ("run", "clips", "config", "evaluated")]
    lines = [
        "", "=== vid2vid demo done in %.0f s ===" % (time.perf_counter() - started),
        f"street (synthetic, {DEMO_SIZE[0]}x{DEMO_SIZE[1]}): {street.clips_ok} clips under {root / 'street'}; "
        f"training {street.train_status}",
        f"  vid2vid model:   {street.model_path}",
        f"  baseline run:    {comparison['baseline_run']}",
        f"  run folder:      {street.run_dir}  (TensorBoard: .venv/bin/tensorboard --logdir {street.run_dir}/tensorboard)",
        f"  evaluation:      {comparison['json']}",
        "", "  " + " | ".join(metric_columns),
        *["  " + " | ".join(row[c] for c in metric_columns) for row in comparison["table"]],
        *["  " + note for note in comparison["notes"]],
        "", "goals:", *["  " + goal for goal in comparison["goals"]], "  " + comparison["budget"],
        *reference["lines"], "",
        f"face (real clip, mediapipe sketches): {sketch.frames} frames, {sketch.empty_frames} without a face, "
        f"under {root / 'face'}",
        "artifacts: " + ", ".join(street.artifact_keys + comparison["artifacts"] + reference["artifacts"]
                                  + [face.artifact_key]),
        f"inspect:    .venv/bin/vid2vid --data-root {root} info --dataset street",
    ]
    if api:
        lines.append(f"Prefect UI: {api.removesuffix('/api')}  (Runs page: the flow run 'demo' and its sub-runs)")
    else:
        lines.append("Prefect UI: `make ui`, then open http://127.0.0.1:4200 (runs were recorded in ./.prefect)")
    print("\n".join(lines))
    return 0
