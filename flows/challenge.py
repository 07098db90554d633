"""Challenger against champion: one evaluation of both, the quality gate, the decision, its artifact and event.

A retrain (scheduled or by hand) ends here. Both models are synthesized on the same held-out clips from the
same real first frames and scored with the same metrics in one run of the evaluation flow, so nothing but
the models differs. The gate (configs/gate/, models/gate.py) decides; the registry swaps the champion only
if it is still the one judged against. A first model (no champion) is judged by the gate's minimums.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.evaluate import EvaluateParams, EvaluationResult, evaluate_step
from flows.naming import run_name
from flows.params import FlowParams
from models.gate import GateConfig, Verdict, judge, load_gate, protocol
from review.settings import review_page
from storage.registry import Decision, Model, SyncRegistry, sync
from storage.target import Target, resolve_target
from tasks.evaluate import RunEvaluation
from tasks.registry import decide_task, emit_decision_task, publish_decision_task


class ChallengeParams(FlowParams):
    dataset: str
    run_dir: str = Field(description="the challenger: a registered run's folder")
    gate: str = Field(default="default", description="quality gate preset under configs/gate/ or a YAML path")
    data_root: str | None = None
    runs_root: str | None = None
    weights_dir: str | None = None
    split: str = "val"


class ChallengeResult(BaseModel):
    outcome: str  # promoted | rejected
    decision_id: int
    challenger: str
    champion: str | None  # the champion after the decision
    reasons: list[str]
    artifact_key: str
    event: str
    evaluation_dir: str


_NAME = run_name("challenge", ChallengeParams, lambda p: f"{p.dataset} {Path(p.run_dir).name}",
                 lambda p: [f"dataset:{p.dataset}", f"run:{Path(p.run_dir).name}"])


@flow(name="challenge", log_prints=True, flow_run_name=_NAME)
def challenge_flow(params: ChallengeParams) -> ChallengeResult:
    """A challenge on its own: resolves the target, then runs the shared body."""
    return challenge(params, resolve_target(params.dataset, params.data_root, params.runs_root, params.weights_dir))


@flow(name="challenge", log_prints=True, flow_run_name=_NAME)
def challenge_step(params: ChallengeParams, target: Target) -> ChallengeResult:
    """The same flow as the last step of a retrain, which resolved the target already."""
    return challenge(params, target)


def challenge(params: ChallengeParams, target: Target) -> ChallengeResult:
    """The body of the challenge flow: ``params.run_dir`` against its champion on ``target``'s dataset."""
    gate = load_gate(params.gate)
    registry = sync(target.runs)
    challenger, champion = _contenders(registry, params.run_dir)
    out = target.runs / "evaluations" / challenger.dataset / f"gate-{challenger.run_name}"
    evaluation = _evaluate_both(params, target, gate, [m for m in (champion, challenger) if m is not None], out)
    by_run = {e.run: e for e in evaluation.evaluations}
    mine = by_run[challenger.run_name].values
    theirs = by_run[champion.run_name].values if champion else None
    verdict = judge(gate, mine, theirs)
    evidence = _evidence(params, gate, verdict, registry, by_run, evaluation, out, challenger, champion)
    decision = decide_task(str(target.runs), challenger, champion, verdict, evidence)
    key, event = _publish(decision, verdict, evidence, challenger.dataset)
    get_run_logger().info("%s %s: %s", decision.outcome, challenger.reference, "; ".join(decision.reasons))
    return ChallengeResult(outcome=decision.outcome, decision_id=decision.id, challenger=challenger.reference,
                           champion=decision.champion_after.reference if decision.champion_after else None,
                           reasons=decision.reasons, artifact_key=key, event=event, evaluation_dir=str(out))


def _contenders(registry: SyncRegistry, run_dir: str) -> tuple[Model, Model | None]:
    """The challenger (a registered run) and the champion of its dataset and config (None: a first model)."""
    challenger = registry.by_run_dir(run_dir)
    if challenger is None:
        raise ValueError(f"run {run_dir} is not registered: only a completed, registered run can challenge")
    return challenger, registry.champion(challenger.dataset, challenger.config)


def _evaluate_both(params: ChallengeParams, target: Target, gate: GateConfig, contenders: list[Model],
                   out: Path) -> EvaluationResult:
    """One evaluation of every contender, with the gate's metrics, into ``out``: the same clips, first frames and
    metrics, so nothing but the models differs."""
    return evaluate_step(EvaluateParams(
        dataset=params.dataset, runs=[m.run_dir for m in contenders], metrics=gate.metrics, split=params.split,
        data_root=params.data_root, runs_root=str(target.runs), weights_dir=params.weights_dir, out_dir=str(out)),
        target)


def _evidence(params: ChallengeParams, gate: GateConfig, verdict: Verdict, registry: SyncRegistry,
              by_run: dict[str, RunEvaluation], evaluation: EvaluationResult, out: Path, challenger: Model,
              champion: Model | None) -> dict[str, Any]:
    """What the decision records: the gate, both rows, the checks, the videos, where and how it was evaluated."""
    data = evaluation.table[0].get("data", "") if evaluation.table else ""  # the flow recorded both models' numbers
    rows = {"challenger": by_run[challenger.run_name].values}
    if champion:
        rows["champion"] = by_run[champion.run_name].values
    return {"gate": {"name": gate.name, "config": gate.model_dump(), "source": str(params.gate)},
            "rows": rows, "checks": [c.__dict__ for c in verdict.checks],
            "videos": _videos(registry, by_run, challenger, champion),
            "evaluation": registry.relative(str(out)), "evaluation_data": data,
            "protocol": protocol(gate.metrics, params.split),
            "judged_against": champion.reference if champion else None}


def _videos(registry: SyncRegistry, by_run: dict[str, RunEvaluation], challenger: Model,
            champion: Model | None) -> list[dict[str, Any]]:
    """Per clip of the challenger: its video and side by side (and the champion's of the same clip), relative to
    the runs root."""
    def files(clip: Any) -> dict[str, str | None]:  # noqa: ANN401 - a ClipEvaluation
        return {"video": registry.relative(clip.video),
                "side_by_side": registry.relative(clip.side_by_side) if clip.side_by_side else None}

    videos = []
    for clip in by_run[challenger.run_name].clips:
        entry = {"clip": clip.clip_id, "challenger": files(clip)}
        if champion:
            entry["champion"] = files(next(c for c in by_run[champion.run_name].clips if c.clip_id == clip.clip_id))
        videos.append(entry)
    return videos


def _publish(decision: Decision, verdict: Verdict, evidence: dict[str, Any], dataset: str) -> tuple[str, str]:
    """The decision's artifact (linking the review page and the videos) and its event; their key and name."""
    review_link = review_page("models", dataset)
    media_base = os.environ.get("VID2VID_OUTPUTS_URL") or review_page("media")
    key = publish_decision_task(decision, verdict, evidence, review_link, media_base)
    return key, emit_decision_task(decision, evidence, key, review_link)
