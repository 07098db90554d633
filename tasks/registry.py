"""Prefect glue around the model registry (storage/registry.py) and the quality gate (models/gate.py):
register a run, record a decision, publish it as an artifact and as an event a team can automate on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from models.gate import Verdict
from storage.fingerprint import sha256_file
from storage.registry import PROMOTED, ChampionChanged, Decision, Model, NewModel, code_commit, sync
from tasks.artifacts import artifact_key, publish_markdown

EVENT_PREFIX = "vid2vid.model"  # vid2vid.model.promoted / vid2vid.model.rejected


@task(name="register-model", task_run_name="register {run_dir}", cache_policy=NO_CACHE)
def register_run_task(runs_root: str, dataset: str, config: str, config_hash: str, run_dir: str, model_path: str,
                      data_fingerprint: str, steps: int, start: str, parent_path: str | None) -> Model:
    """Every completed run goes into the registry with its lineage (the model file's and the parent's sha256,
    the code commit); what it scores is added by each evaluation of it."""
    parent_sha = sha256_file(parent_path) if parent_path and Path(parent_path).is_file() else None
    return sync(runs_root).register(NewModel(
        dataset=dataset, config=config, config_hash=config_hash, run_dir=run_dir, model_path=model_path,
        model_sha256=sha256_file(model_path), data_fingerprint=data_fingerprint, start=start,
        parent_path=parent_path, parent_sha256=parent_sha, code_commit=code_commit(), steps=steps))


@task(name="record-metrics", cache_policy=NO_CACHE)
def record_metrics_task(runs_root: str, model_id: int, evaluation: str, data_fingerprint: str, protocol: str,
                        values: dict[str, Any]) -> None:
    sync(runs_root).record_metrics(model_id, evaluation, data_fingerprint, protocol, values)


@task(name="decide", task_run_name="decide {challenger.run_name}", cache_policy=NO_CACHE)
def decide_task(runs_root: str, challenger: Model, champion: Model | None, verdict: Verdict,
                evidence: dict[str, Any]) -> Decision:
    """The gate's verdict written down; a promotion swaps the champion only if it is still the one judged
    against. Lost that race (another retrain was promoted meanwhile): rejected, saying so."""
    registry = sync(runs_root)
    judged = champion.id if champion else None
    if verdict.passed:
        try:
            return registry.decide(challenger.id, promote=True, judged_against=judged, reasons=verdict.reasons,
                                   evidence=evidence)
        except ChampionChanged as exc:
            stale = [f"passed the gate against {champion.reference if champion else 'no champion'}, but {exc}: "
                     "a challenger judged against an earlier champion is not promoted (retrain to challenge the new one)"]
            return registry.decide(challenger.id, promote=False, judged_against=judged, reasons=stale + verdict.reasons,
                                   evidence=evidence)
    return registry.decide(challenger.id, promote=False, judged_against=judged, reasons=verdict.reasons,
                           evidence=evidence)


def _media_link(base: str, relative: str | None) -> str:
    return f"[{Path(relative).name}]({base.rstrip('/')}/{relative})" if relative else "—"


def decision_markdown(decision: Decision, verdict: Verdict, evidence: dict[str, Any], review_link: str,
                      media_base: str) -> str:
    """The decision, both rows of the one evaluation, each rule's check and both videos of every clip."""
    challenger, before = decision.model, decision.champion_before
    rows = evidence.get("rows", {})
    metrics = sorted({k for row in rows.values() for k in row})
    lines = [f"## {decision.outcome.upper()}: `{challenger.run_name}` for `{decision.dataset}/{decision.config}`", "",
             f"Champion now: `{decision.champion_after.reference if decision.champion_after else 'none'}` "
             f"(before: `{before.reference if before else 'none — a first model is judged by the minimums'}`). "
             f"Gate `{evidence.get('gate', {}).get('name', '?')}`; one evaluation of both on data "
             f"`{evidence.get('evaluation_data', '?')}` ({evidence.get('protocol', '')}).", "",
             "### Why", "", *(f"- {line}" for line in decision.reasons), "",
             "### Both rows (one evaluation)", "", "| model | run | " + " | ".join(metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    for role, run in (("challenger", challenger.run_name), ("champion", before.run_name if before else None)):
        if run and role in rows:
            lines.append(f"| {role} | `{run}` | " + " | ".join(str(rows[role].get(m, "")) for m in metrics) + " |")
    lines += ["", "### Gate checks", "", "| metric | challenger | champion | passed | detail |", "|---|---|---|---|---|"]
    lines += [f"| {c.metric} | {c.challenger} | {c.champion if c.champion is not None else '—'} | "
              f"{'yes' if c.passed else 'NO'} | {c.detail} |" for c in verdict.checks]
    lines += ["", "### Videos of each clip (synthesized, and source | synthesized | real)", "",
              "| clip | challenger | champion |", "|---|---|---|"]
    for clip in evidence.get("videos", []):
        mine, theirs = clip.get("challenger", {}), clip.get("champion", {})
        lines.append(f"| {clip['clip']} | {_media_link(media_base, mine.get('video'))} · "
                     f"{_media_link(media_base, mine.get('side_by_side'))} | {_media_link(media_base, theirs.get('video'))}"
                     f" · {_media_link(media_base, theirs.get('side_by_side'))} |")
    lines += ["", f"Side by side in the review app: {review_link}"]
    return "\n".join(lines)


@task(name="publish-decision", cache_policy=NO_CACHE)
def publish_decision_task(decision: Decision, verdict: Verdict, evidence: dict[str, Any], review_link: str,
                          media_base: str) -> str:
    """Keyed by dataset and config: the artifact's versions are that pair's decision history."""
    return publish_markdown(artifact_key("model-decision", decision.dataset, decision.config),
                            decision_markdown(decision, verdict, evidence, review_link, media_base),
                            f"{decision.outcome}: {decision.model.run_name} ({decision.dataset}/{decision.config})")


@task(name="emit-decision-event", cache_policy=NO_CACHE)
def emit_decision_task(decision: Decision, evidence: dict[str, Any], artifact: str, review_link: str) -> str:
    """``vid2vid.model.promoted`` / ``vid2vid.model.rejected`` about the resource ``vid2vid.model.<dataset>.<config>``:
    what a Prefect automation (a notification, a deployment run) triggers on."""
    name = f"{EVENT_PREFIX}.{'promoted' if decision.outcome == PROMOTED else 'rejected'}"
    emit_event(
        event=name,
        resource={"prefect.resource.id": f"vid2vid.model.{decision.dataset}.{decision.config}",
                  "prefect.resource.name": f"{decision.dataset}/{decision.config}",
                  "vid2vid.dataset": decision.dataset, "vid2vid.config": decision.config},
        related=[{"prefect.resource.id": f"vid2vid.run.{decision.model.run_name}", "prefect.resource.role": "challenger"}],
        payload={"dataset": decision.dataset, "config": decision.config, "outcome": decision.outcome,
                 "decision_id": decision.id, "challenger": decision.model.reference,
                 "champion": decision.champion_after.reference if decision.champion_after else None,
                 "previous_champion": decision.champion_before.reference if decision.champion_before else None,
                 "metrics": evidence.get("rows", {}), "reasons": decision.reasons, "artifact": artifact,
                 "review": review_link})
    return name
