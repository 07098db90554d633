"""Preprocessing flow: rgb shards → semantic / instance / flow / sketch / pose shards, on Dask.

One task per (clip, stage) so the UI shows each one's fate; an existing Dask scheduler when one is named
(``dask_address``, else ``$VID2VID_DASK_ADDRESS``), else a local cluster. Unchanged inputs are skipped by
fingerprint; when every shard of the run is current that is known before any cluster starts, and none does. Bad input quarantines the clip (with the reason, in the manifest and quarantine/) and the
flow completes, counting it; missing weights or a missing mediapipe venv fail the stage with a message
naming the file, and the flow then ends Failed after publishing its summary: nothing is silently skipped.

The flow is the recipe; each job is elsewhere: the plan (which clips × stages, and whether any shard needs
work) is ``models/preprocess/plan.py``, running the jobs on the task runner ``flows/preprocess_jobs.py``, the
tally and the summary ``models/preprocess/summary.py``, quarantining ``storage.manifest.quarantine_clips``, the
artifact ``tasks/preprocess_publish.py``.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.failures import PreprocessFailed
from flows.dask_cluster import task_runner, workers_share_api
from flows.forms import PreprocessParams, PreprocessSettings  # noqa: F401 - PreprocessSettings: imported from here too
from flows.naming import dataset_tag, run_name
from flows.preprocess_jobs import run_jobs
from models.preprocess.clip import RunSettings
from models.preprocess.plan import PreprocessPlan, plan_run
from models.preprocess.summary import StageSummary  # noqa: F401 - imported from here too
from models.preprocess.summary import PreprocessSummary, summarize, tally
from storage.manifest import quarantine_clips
from storage.target import Target, resolve_target
from tasks.preprocess_publish import publish_preprocess_task


def _describe(params: PreprocessParams) -> str:
    return f"{params.dataset} {','.join(params.stage_list)}"


def plan(params: PreprocessParams, target: Target) -> PreprocessPlan:
    """The run ``params`` ask for on ``target``'s dataset; a missing manifest or an unknown clip is refused."""
    run = RunSettings(device=params.device, resolution=params.resolution, weights_dir=target.weights_dir,
                      batch_size=params.batch_size, threads=params.threads_per_worker, force=params.force)
    return plan_run(target.layout, params.clips, {s: params.settings_for(s) for s in params.stage_list}, run)


def needs_workers(params: PreprocessParams, target: Target) -> bool:
    """Whether any (clip, stage) of this run has frames to compute or labels to validate, decided before any
    Dask cluster starts (or is joined): a rerun with every shard current costs no worker processes."""
    try:
        return not plan(params, target).all_current()
    except (FileNotFoundError, ValueError):
        return False  # refused by the flow itself, which needs no workers for that


_NAME = run_name("preprocess", PreprocessParams, _describe, dataset_tag)


@flow(name="preprocess", log_prints=True, flow_run_name=_NAME)
def preprocess_flow(params: PreprocessParams) -> PreprocessSummary:
    """Entry point (CLI, deployments): resolves the target, then runs the stages on the Dask runner the params
    ask for. When every shard is current, no cluster: the tasks only confirm their skips, on threads of this
    process."""
    return preprocess(params, resolve_target(params.dataset, params.data_root, weights_dir=params.weights_dir,
                                             dask_address=params.dask_address))


@flow(name="preprocess", log_prints=True, flow_run_name=_NAME)
def preprocess_step(params: PreprocessParams, target: Target) -> PreprocessSummary:
    """The same flow as a step of a caller that resolved the target already (the full rebuild)."""
    return preprocess(params, target)


def preprocess(params: PreprocessParams, target: Target) -> PreprocessSummary:
    """The body of the preprocess flow: picks the task runner, then runs the stages on ``target``'s dataset."""
    if not needs_workers(params, target):
        return preprocess_on_dask.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(params, target)
    with workers_share_api(target.dask_address):
        runner = task_runner(target.dask_address, params.workers, params.threads_per_worker)
        return preprocess_on_dask.with_options(task_runner=runner)(params, target)


@flow(name="preprocess-on-dask", log_prints=True,
      flow_run_name=run_name("preprocess", PreprocessParams, lambda p: f"{_describe(p)} on dask", dataset_tag))
def preprocess_on_dask(params: PreprocessParams, target: Target) -> PreprocessSummary:
    """Plan → one task per job → tally → quarantine → publish; fails after publishing when a task failed."""
    started = time.perf_counter()
    planned = plan(params, target)
    layout = planned.layout
    outcomes, failed = run_jobs(planned)
    stages, reasons = tally(planned.backends, outcomes, failed)
    quarantine_clips(layout, reasons)
    wall = time.perf_counter() - started
    key = publish_preprocess_task(layout, stages, len(outcomes), len(reasons), len(failed), wall)
    summary = summarize(str(layout.root), layout.dataset, stages, outcomes, reasons, failed, wall, key)
    if failed:
        first = next(iter(failed.items()))
        raise PreprocessFailed(f"{len(failed)} preprocessing task(s) of {layout.dataset!r} failed (first: "
                               f"{first[0]}: {first[1]}); see artifact {summary.artifact_key}", detail=summary)
    return summary
