"""Challenger against champion: one evaluation of both, the quality gate, the decision, its artifact and event.

A retrain (scheduled or by hand) ends here. Both models are synthesized on the same held-out clips from the
same real first frames and scored with the same metrics in one run of the evaluation flow, so nothing but
the models differs. The gate (configs/gate/, models/gate.py) decides; the registry swaps the champion only
if it is still the one judged against. A first model (no champion) is judged by the gate's minimums.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.evaluate import EvaluateParams, evaluate_step
from flows.naming import run_name
from flows.params import FlowParams
from models.gate import judge, load_gate, protocol
from review.settings import review_page
from storage.registry import sync
from storage.target import Target, resolve_target
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
    logger = get_run_logger()
    gate = load_gate(params.gate)
    runs = target.runs
    registry = sync(runs)
    challenger = registry.by_run_dir(params.run_dir)
    if challenger is None:
        raise ValueError(f"run {params.run_dir} is not registered: only a completed, registered run can challenge")
    champion = registry.champion(challenger.dataset, challenger.config)
    contenders = [m for m in (champion, challenger) if m is not None]
    out = runs / "evaluations" / challenger.dataset / f"gate-{challenger.run_name}"
    evaluation = evaluate_step(EvaluateParams(
        dataset=params.dataset, runs=[m.run_dir for m in contenders], metrics=gate.metrics, split=params.split,
        data_root=params.data_root, runs_root=str(runs), weights_dir=params.weights_dir, out_dir=str(out)), target)
    by_run = {e.run: e for e in evaluation.evaluations}
    data = evaluation.table[0].get("data", "") if evaluation.table else ""  # the flow recorded both models' numbers
    how = protocol(gate.metrics, params.split)

    mine = by_run[challenger.run_name].values
    theirs = by_run[champion.run_name].values if champion else None
    verdict = judge(gate, mine, theirs)
    videos = []
    for clip in by_run[challenger.run_name].clips:
        entry = {"clip": clip.clip_id, "challenger": {"video": registry.relative(clip.video),
                                                      "side_by_side": registry.relative(clip.side_by_side)
                                                      if clip.side_by_side else None}}
        if champion:
            theirs_clip = next(c for c in by_run[champion.run_name].clips if c.clip_id == clip.clip_id)
            entry["champion"] = {"video": registry.relative(theirs_clip.video),
                                 "side_by_side": registry.relative(theirs_clip.side_by_side)
                                 if theirs_clip.side_by_side else None}
        videos.append(entry)
    evidence = {"gate": {"name": gate.name, "config": gate.model_dump(), "source": str(params.gate)},
                "rows": {"challenger": mine, **({"champion": theirs} if champion else {})},
                "checks": [c.__dict__ for c in verdict.checks], "videos": videos,
                "evaluation": registry.relative(str(out)), "evaluation_data": data, "protocol": how,
                "judged_against": champion.reference if champion else None}
    decision = decide_task(str(runs), challenger, champion, verdict, evidence)
    review_link = review_page("models", challenger.dataset)
    media_base = os.environ.get("VID2VID_OUTPUTS_URL") or review_page("media")
    key = publish_decision_task(decision, verdict, evidence, review_link, media_base)
    event = emit_decision_task(decision, evidence, key, review_link)
    logger.info("%s %s: %s", decision.outcome, challenger.reference, "; ".join(decision.reasons))
    return ChallengeResult(outcome=decision.outcome, decision_id=decision.id, challenger=challenger.reference,
                           champion=decision.champion_after.reference if decision.champion_after else None,
                           reasons=decision.reasons, artifact_key=key, event=event, evaluation_dir=str(out))
