"""Prefect glue for cluster training as a Ray Job: submit or attach, stream logs, mirror progress, cancel.

The rules (one job per run, attach instead of duplicate, where results are read from) live in
``models.training.ray_jobs``; this module only connects them to the Prefect run: its logger, its
progress artifact and its cancellation.
"""

from __future__ import annotations

import re

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from models.training import ray_jobs
from models.training.job import TrainJob, TrainOutcome
from tasks.train import TrainingProgress

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Ray Train's per-report chatter: the same figures reach the run through metrics.jsonl and the progress artifact
_NOISE = ("Reporting training result", "Checkpoint successfully created", "find_unused_parameters=True")


def _cancel_requested() -> bool:
    run_id = flow_run.get_id()
    if not run_id:
        return False
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return bool(state and state.is_cancelling())


@task(name="ray-job-train", task_run_name="ray job {job.dataset} -> {job.run_dir}", cache_policy=NO_CACHE)
def train_on_cluster_task(job: TrainJob) -> TrainOutcome:
    """Submit the run's Ray Job (or attach to it) on ``job.ray_address`` and follow it to its end."""
    logger = get_run_logger()
    address = job.ray_address or ""
    ref = ray_jobs.submit_or_attach(job, address, {"prefect_flow_run_id": flow_run.get_id() or ""})
    verb = "attached to the running" if ref.attached else "submitted"
    logger.info("%s Ray job %s on %s (run folder %s)", verb, ref.submission_id, address, job.run_dir)
    follower = TrainingProgress(job, f"training run {job.run_path.name} (Ray job {ref.submission_id})")
    polls = 0

    def on_log(line: str) -> None:
        line = _ANSI.sub("", line).rstrip()
        if line and not any(noise in line for noise in _NOISE):
            logger.info("[ray job] %s", line)

    def on_poll() -> None:
        follower.poll()

    def should_cancel() -> bool:
        nonlocal polls
        polls += 1
        return polls % 3 == 0 and _cancel_requested()

    status = ray_jobs.follow(address, ref, on_log=on_log, on_poll=on_poll, should_cancel=should_cancel)
    logger.info("Ray job %s ended: %s", ref.submission_id, status)
    try:
        outcome = ray_jobs.outcome_of(address, ref, status, job)
        follower.completed = outcome.status == "completed"
    finally:
        follower.close()
    return outcome


def stop_jobs_of_flow_run(address: str, flow_run_id: str) -> list[str]:
    """Stop every running Ray job a flow run submitted (its ``on_cancellation`` hook calls this)."""
    return ray_jobs.stop_jobs_with_metadata(address, {"prefect_flow_run_id": flow_run_id})
