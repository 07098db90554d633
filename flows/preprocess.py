"""Preprocessing flow: rgb shards → semantic / instance / flow / sketch / pose shards, on Dask.

One task per (clip, stage) so the UI shows each one's fate; an existing Dask scheduler when one is named
(``dask_address``, else ``$VID2VID_DASK_ADDRESS``), else a local cluster. Unchanged inputs are skipped by
fingerprint; when every shard of the run is current that is known before any cluster starts, and none does. Bad input quarantines the clip (with the reason, in the manifest and quarantine/) and the
flow completes, counting it; missing weights or a missing mediapipe venv fail the stage with a message
naming the file, and the flow then ends Failed after publishing its summary: nothing is silently skipped.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from flows.failures import PreprocessFailed
from flows.dask_cluster import task_runner, workers_share_api
from flows.forms import PreprocessParams, PreprocessSettings  # noqa: F401 - PreprocessSettings: imported from here too
from flows.naming import dataset_tag, run_name
from models.preprocess.clip import RunSettings, StageOutcome, would_skip
from storage.layout import DatasetLayout
from storage.manifest import ClipRecord, merge_records, quarantine, read_manifest
from storage.target import Target, resolve_target
from tasks.artifacts import artifact_key, publish_table
from tasks.preprocess import preprocess_clip_task
from tasks.progress import track


class StageSummary(BaseModel):
    stage: str
    backend: str
    clips: int = 0
    written: int = 0
    skipped: int = 0
    validated: int = 0
    quarantined: dict[str, str] = Field(default_factory=dict)
    failed: dict[str, str] = Field(default_factory=dict)
    frames: int = 0
    empty_frames: int = 0
    seconds: float = 0.0
    computed_frames: int = 0  # frames this run computed (written), not skipped or only validated
    computed_seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        """Real throughput: frames computed per task-second; 0 when nothing was computed."""
        return self.computed_frames / self.computed_seconds if self.computed_seconds > 0 else 0.0

    @property
    def throughput(self) -> str:
        if self.computed_frames:
            return f"{self.frames_per_second:.2f}"
        if self.validated:
            return "n/a (validated, not computed)"
        return "n/a (unchanged, skipped)" if self.skipped else "n/a"


class PreprocessSummary(BaseModel):
    dataset: str
    data_root: str
    stages: dict[str, StageSummary]
    outcomes: list[StageOutcome]
    quarantined: dict[str, str]  # clip -> reasons
    failed: dict[str, str]  # "stage/clip" -> error
    wall_seconds: float
    artifact_key: str


def _describe(params: PreprocessParams) -> str:
    return f"{params.dataset} {','.join(params.stage_list)}"


def _plan(params: PreprocessParams, layout: DatasetLayout) -> dict[str, ClipRecord]:
    """The dataset's ok clips this run covers; a missing manifest or an unknown clip is refused."""
    manifest = read_manifest(layout)
    if not manifest:
        raise FileNotFoundError(f"no manifest for dataset {params.dataset!r} at {layout.manifest_path}: ingest first")
    records = {r.clip_id: r for r in manifest if r.status == "ok"}
    if params.clips is not None:
        unknown = sorted(set(params.clips) - set(records))
        if unknown:
            raise ValueError(f"clips {unknown} are not ok clips of {params.dataset!r}")
        records = {c: records[c] for c in params.clips}
    return records


def _run_settings(params: PreprocessParams, target: Target) -> RunSettings:
    return RunSettings(device=params.device, resolution=params.resolution, weights_dir=target.weights_dir,
                       batch_size=params.batch_size, threads=params.threads_per_worker, force=params.force)


def _size(record: ClipRecord) -> tuple[int, int] | None:
    return (record.width, record.height) if record.height and record.width else None


def needs_workers(params: PreprocessParams, target: Target) -> bool:
    """Whether any (clip, stage) of this run has frames to compute or labels to validate, decided before any
    Dask cluster starts (or is joined): a rerun with every shard current costs no worker processes."""
    try:
        records = _plan(params, target.layout)
    except (FileNotFoundError, ValueError):
        return False  # refused by the flow itself, which needs no workers for that
    run = _run_settings(params, target)
    return not all(would_skip(target.layout, clip_id, stage, params.settings_for(stage), run, _size(record))
                   for stage in params.stage_list for clip_id, record in records.items())


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
    logger = get_run_logger()
    started = time.perf_counter()
    layout = target.layout
    records = _plan(params, layout)
    run = _run_settings(params, target)
    stages = params.stage_list
    jobs = {}
    for stage in stages:
        settings = params.settings_for(stage)
        for clip_id, record in sorted(records.items()):
            future = preprocess_clip_task.submit(layout, clip_id, stage, settings, run,
                                                 _size(record))
            jobs[future] = (stage, clip_id, settings.backend)
    total = max(1, len(jobs))
    progress = create_progress_artifact(progress=0.0, key=artifact_key("preprocess-progress", layout.dataset),
                                        description=f"preprocessing {len(records)} clip(s) × {len(stages)} stage(s)")
    outcomes: list[StageOutcome] = []
    failed: dict[str, str] = {}
    with track(f"preprocess {layout.dataset}", len(jobs), "tasks") as tracker:
        for done, future in enumerate(as_completed(list(jobs)), 1):
            stage, clip_id, backend = jobs[future]
            try:
                outcomes.append(future.result())
            except Exception as exc:  # noqa: BLE001 - a failed task: recorded, reported, then the flow fails
                failed[f"{stage}/{clip_id}"] = f"{type(exc).__name__}: {exc}"
                logger.error("%s/%s failed: %s", stage, clip_id, exc)
            update_progress_artifact(progress, progress=100.0 * done / total)
            tracker.update(done, f"{stage}/{clip_id}")
    if not jobs:  # nothing to do is done: no progress artifact is left at 0 %
        update_progress_artifact(progress, progress=100.0)
    stage_summaries, reasons = _tally(params, outcomes, failed)
    quarantine_clips(layout, reasons)
    summary = _publish(layout, stage_summaries, outcomes, reasons, failed, time.perf_counter() - started)
    if failed:
        first = next(iter(failed.items()))
        raise PreprocessFailed(f"{len(failed)} preprocessing task(s) of {layout.dataset!r} failed (first: "
                               f"{first[0]}: {first[1]}); see artifact {summary.artifact_key}", detail=summary)
    return summary


def _tally(params: PreprocessParams, outcomes: list[StageOutcome],
           failed: dict[str, str]) -> tuple[dict[str, StageSummary], dict[str, list[str]]]:
    """Per-stage counts, and every quarantined clip's reasons (one per stage that refused it)."""
    stages = {s: StageSummary(stage=s, backend=params.settings_for(s).backend) for s in params.stage_list}
    reasons: dict[str, list[str]] = {}
    for o in outcomes:
        s = stages[o.stage]
        s.clips += 1
        s.seconds += o.seconds
        if o.status == "quarantined":
            s.quarantined[o.clip_id] = o.error
            reasons.setdefault(o.clip_id, []).append(o.error)
            continue
        setattr(s, o.status, getattr(s, o.status) + 1)
        s.frames += o.frames
        if o.status == "written":
            s.computed_frames += o.frames
            s.computed_seconds += o.seconds
        s.empty_frames += o.empty
    for key, error in failed.items():
        stage, clip = key.split("/", 1)
        stages[stage].clips += 1
        stages[stage].failed[clip] = error
    return stages, reasons


def quarantine_clips(layout: DatasetLayout, reasons: dict[str, list[str]]) -> list[ClipRecord]:
    """Quarantine the clips, with every stage's reason, in quarantine/ and the manifest."""
    if not reasons:
        return []
    by_id = {r.clip_id: r for r in read_manifest(layout)}
    updated = [by_id[clip_id].model_copy(update={"status": "quarantined", "error": "; ".join(errors)})
               for clip_id, errors in reasons.items()]
    for record in updated:
        quarantine(layout, record)
    merge_records(layout, updated)
    return updated


def _publish(layout: DatasetLayout, stages: dict[str, StageSummary], outcomes: list[StageOutcome],
             reasons: dict[str, list[str]], failed: dict[str, str], wall: float) -> PreprocessSummary:
    rows = [{"stage": s.stage, "backend": s.backend, "clips": s.clips, "written": s.written, "skipped": s.skipped,
             "validated": s.validated, "frames": s.frames, "task seconds": round(s.seconds, 2),
             "computed frames/s": s.throughput, "empty frames": s.empty_frames,
             "quarantined": "; ".join(f"{c}: {e}" for c, e in s.quarantined.items()) or "none",
             "failed": "; ".join(f"{c}: {e}" for c, e in s.failed.items()) or "none"} for s in stages.values()]
    key = publish_table(artifact_key("preprocess", layout.dataset), rows,
                        f"**preprocess** `{layout.base}`: {len(outcomes)} task(s) done, {len(reasons)} clip(s) "
                        f"quarantined, {len(failed)} failed, {wall:.1f} s wall")
    return PreprocessSummary(dataset=layout.dataset, data_root=str(layout.root), stages=stages, outcomes=outcomes,
                             quarantined={c: "; ".join(e) for c, e in reasons.items()}, failed=failed,
                             wall_seconds=wall, artifact_key=key)
