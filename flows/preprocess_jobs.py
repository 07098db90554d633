"""Running a preprocessing plan on the flow's task runner (Dask, or threads when every shard is current): one
task per job, collected as they finish, with the run's progress artifact and the command line's progress.

A task that fails is recorded (``stage/clip`` -> its error) and logged; the flow fails after publishing its
summary, so every other job's outcome still counts.
"""

from __future__ import annotations

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed

from models.preprocess.clip import StageOutcome
from models.preprocess.plan import PreprocessPlan
from tasks.artifacts import artifact_key
from tasks.preprocess import preprocess_clip_task
from tasks.progress import track


def run_jobs(plan: PreprocessPlan) -> tuple[list[StageOutcome], dict[str, str]]:
    """Every job of ``plan`` submitted at once; returns the outcomes in the order they finished and the
    failures (``stage/clip`` -> ``Type: message``)."""
    logger, layout = get_run_logger(), plan.layout
    jobs = {preprocess_clip_task.submit(layout, job.clip_id, job.stage, job.settings, plan.run, job.size): job
            for job in plan.jobs}
    total = max(1, len(jobs))
    progress = create_progress_artifact(progress=0.0, key=artifact_key("preprocess-progress", layout.dataset),
                                        description=f"preprocessing {len(plan.records)} clip(s) × "
                                                    f"{len(plan.stages)} stage(s)")
    outcomes: list[StageOutcome] = []
    failed: dict[str, str] = {}
    with track(f"preprocess {layout.dataset}", len(jobs), "tasks") as tracker:
        for done, future in enumerate(as_completed(list(jobs)), 1):
            job = jobs[future]
            try:
                outcomes.append(future.result())
            except Exception as exc:  # noqa: BLE001 - a failed task: recorded, reported, then the flow fails
                failed[f"{job.stage}/{job.clip_id}"] = f"{type(exc).__name__}: {exc}"
                logger.error("%s/%s failed: %s", job.stage, job.clip_id, exc)
            update_progress_artifact(progress, progress=100.0 * done / total)
            tracker.update(done, f"{job.stage}/{job.clip_id}")
    if not jobs:  # nothing to do is done: no progress artifact is left at 0 %
        update_progress_artifact(progress, progress=100.0)
    return outcomes, failed
