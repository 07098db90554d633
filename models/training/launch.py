"""The driver side of a training run: Ray up, TorchTrainer.fit(), then the run's outputs on disk.

A local Ray instance is started (and stopped again) when no address is given; with an address the
same code runs on an existing cluster. Each run has a unique folder, so Ray never resumes by accident.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import ray
from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from models.training.job import FaultInjection, TrainJob, TrainOutcome
from models.vid2vid.checkpoint import validate_checkpoint, validate_init_from
from models.training.loop import CHECKPOINT_FILE, METRICS_FILE, NAN_REPORT, train_loop_per_worker
from storage import locations
from storage.atomic import atomic_write_bytes
from storage.dataset import ClipWindowDataset
from storage.fingerprint import canonical_hash
from storage.layout import DatasetLayout
from storage.shards import read_meta

MODEL_FILE = "model.pt"
SUMMARY_FILE = "summary.json"
FAULTS_ENV = "VID2VID_FAULT_INJECTION"  # test hook: JSON of FaultInjection, read by the driver only
#: Ray's own log records in our runs: errors only. Without the dashboard (not started locally) Ray Train's
#: PlacementGroupCleaner actor warns "Failed to query Ray Train Controller actor state" every few seconds, and
#: each report logs INFO lines; the figures reach the run through metrics.jsonl and the progress artifact.
#: Our workers' print() lines still reach the driver (log_to_driver), and failures still raise.
QUIET_RAY = {"logging_level": logging.WARNING, "logging_config": ray.LoggingConfig(log_level="ERROR")}


def with_env_faults(job: TrainJob) -> TrainJob:
    """The job with ``$VID2VID_FAULT_INJECTION``'s faults when it names none itself (tests of whole flows)."""
    text = os.environ.get(FAULTS_ENV)
    if not text or job.faults != FaultInjection():
        return job
    return job.model_copy(update={"faults": FaultInjection.model_validate_json(text)})


def dataset_fingerprint(layout: DatasetLayout, stages: tuple[str, ...]) -> str:
    """What the training data is: manifest bytes plus every used shard's fingerprint."""
    parts = [layout.manifest_path.read_bytes().hex() if layout.manifest_path.is_file() else ""]
    for stage in ("rgb", *stages):
        folder = layout.stage_dir(stage)
        for shard in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            meta = read_meta(shard)
            parts.append(f"{stage}/{shard.name}:{meta.fingerprint if meta else 'unreadable'}")
    return canonical_hash(parts)


def _start_ray(job: TrainJob) -> bool:
    """Connect to the job's Ray address (else ``$VID2VID_RAY_ADDRESS``) or start a local instance; True when this
    call started Ray."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    address = locations.ray_address(job.ray_address)
    if address:
        ray.init(address=address, log_to_driver=True, **QUIET_RAY)
        return True
    # Ray Train's preemption watcher (node draining on a cluster) means nothing on one machine, and its actor's
    # creation logs an error-level line ("constructor arguments in the object store") in every run; the local
    # instance's processes inherit this setting, a cluster keeps its own
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    cpus = max(job.workers + 1, os.cpu_count() or 1)
    # address="local": a new instance, never a cluster some other `ray start` left on this machine
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, object_store_memory=512 * 1024**2,
             log_to_driver=True, **QUIET_RAY)
    return True


def read_metrics(run: Path) -> list[dict]:
    path = run / METRICS_FILE
    if not path.is_file():
        return []
    by_step: dict[float, dict] = {}
    for line in path.read_text().splitlines():  # a restarted group redoes some steps: keep the latest
        row = json.loads(line)
        by_step[row["step"]] = row
    return [by_step[k] for k in sorted(by_step)]


SUPERSEDED_DIR = "superseded"  # Ray state and metrics rows an explicit --resume-from replaced (kept, not deleted)


def _checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file holds (both vid2vid's and the predictor's save it as ``step``)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable Ray checkpoint is superseded all the same
        return None
    step = state.get("step") if isinstance(state, dict) else None
    return int(step) if isinstance(step, (int, float)) else None


def supersede_ray_state(run: Path, resume_from: Path) -> Path:
    """An explicit ``--resume-from`` wins over the checkpoints Ray registered in the run folder (Ray would
    restore its own latest one and ignore the named file): the named file is copied beside the run when it
    lives inside Ray's folder, Ray's state is moved to ``superseded/ray-<time>``, and the metrics rows after
    the named step move to ``superseded/metrics-<time>.jsonl``, so the resumed run trains every step once and
    metrics.jsonl stays one row per step. Returns the checkpoint to resume from."""
    ray_dir = run / "ray"
    registered = sorted(ray_dir.glob(f"*/checkpoint_*/{CHECKPOINT_FILE}"))
    if not registered:
        return resume_from
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = run / SUPERSEDED_DIR
    aside.mkdir(exist_ok=True)
    if ray_dir in resume_from.parents:  # with its progress.json: the restart skips the batches it had trained
        kept = aside / f"resume-from-{stamp}-{resume_from.parent.name}"
        shutil.copytree(resume_from.parent, kept)
        resume_from = kept / resume_from.name
    latest = registered[-1]
    os.replace(ray_dir, aside / f"ray-{stamp}")
    step = _checkpoint_step(resume_from)
    metrics = run / METRICS_FILE
    if step is not None and metrics.is_file():
        lines = metrics.read_text().splitlines()
        keep = [line for line in lines if json.loads(line).get("step", 0) <= step]
        later = [line for line in lines if json.loads(line).get("step", 0) > step]
        if later:
            (aside / f"metrics-{stamp}.jsonl").write_text("\n".join(later) + "\n")
            atomic_write_bytes(metrics, ("\n".join(keep) + "\n" if keep else "").encode())
    # straight to the terminal: a print inside a Prefect task becomes an INFO log record the console may filter
    sys.stderr.write(f"warning: --resume-from {resume_from} (step {step}) wins over Ray's own checkpoint {latest} "
                     f"(step {_checkpoint_step(latest)}); Ray's state is kept in {aside / f'ray-{stamp}'}\n")
    sys.stderr.flush()
    return resume_from


def stop_reason(job: TrainJob, steps: int, epochs: int) -> str:
    """Why a completed run ended where it did (said when it ended before --max-steps)."""
    limit = job.epochs or job.model.train.epochs
    source = "--epochs" if job.epochs else "the model config's train.epochs"
    if job.max_steps is not None and steps < job.max_steps:
        return (f"stopped at step {steps} before --max-steps {job.max_steps}: the epoch limit ended it "
                f"({limit} epoch(s), {source}; raise it with --epochs to train longer)")
    if job.max_steps is not None:
        return f"stopped at --max-steps {job.max_steps}"
    return f"stopped after the epoch limit ({limit} epoch(s), {source})"


def same_budget(run_dir: str | Path, max_steps: int | None, epochs: int | None, steps: int) -> bool:
    """Whether a finished run (``steps`` trained) was asked for this budget (``--max-steps``, ``--epochs``), so a
    rebuild that finds it may call the training unchanged. Its summary's job says what it was asked; a run
    without one (imported) counts when it trained exactly ``max_steps`` (or when no budget is asked)."""
    summary = Path(run_dir) / SUMMARY_FILE
    try:
        asked = json.loads(summary.read_text())["job"]
    except (OSError, ValueError, KeyError, TypeError):
        return max_steps is None or steps == max_steps
    return (asked.get("max_steps"), asked.get("epochs")) == (max_steps, epochs)


def run_training(job: TrainJob, layout: DatasetLayout | None = None) -> TrainOutcome:
    """Train on Ray: every worker runs the one loop (``models/training/loop.py``) for the job's model kind,
    given ``job`` as plain data, and writes the run folder's outputs. ``layout``: the job's dataset as the
    caller resolved it (``job.dataset`` under ``job.data_root``); built from those when not given."""
    run = job.run_path.resolve()
    job = with_env_faults(job.model_copy(update={"run_dir": str(run)}))
    vid2vid = job.model_kind == "vid2vid"
    if job.resume_from:  # relative paths and bad files are settled here, never inside (retried) Ray workers
        resume = (validate_checkpoint(job.resume_from, job.model) if vid2vid
                  else Path(job.resume_from).expanduser().resolve())  # other models check their own kind first
        job = job.model_copy(update={"resume_from": str(resume)})
    if job.init_from:
        if not vid2vid:
            raise ValueError("init_from starts vid2vid training from a model file; this model has no such start "
                             "(continue one of its runs with resume_from)")
        job = job.model_copy(update={"init_from": str(validate_init_from(job.init_from, job.model)[0])})
    run.mkdir(parents=True, exist_ok=True)  # only for a request whose files are usable
    if job.resume_from:  # the named checkpoint, never Ray's older registered one, is where the run continues
        job = job.model_copy(update={"resume_from": str(supersede_ray_state(run, Path(job.resume_from)))})
    layout = layout if layout is not None else DatasetLayout(Path(job.data_root), job.dataset)
    fingerprint = dataset_fingerprint(layout, job.stages)
    # Bad data is found here, before any worker starts: Ray would retry it as if it were a crash.
    window = job.window_frames or job.model.train.max_seq_len  # type: ignore[union-attr]
    ClipWindowDataset(layout, window, split="train", stages=job.stages, rank=0, world_size=job.workers)
    started = time.perf_counter()
    own_ray = _start_ray(job)
    try:
        use_gpu = job.gpus_per_worker > 0
        resources = {"CPU": 1, **({"GPU": job.gpus_per_worker} if use_gpu else {})}
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config=job.model_dump(mode="json"),
            scaling_config=ScalingConfig(num_workers=job.workers, use_gpu=use_gpu, resources_per_worker=resources),
            run_config=RunConfig(
                name="train", storage_path=str(run / "ray"),
                checkpoint_config=CheckpointConfig(num_to_keep=job.keep_checkpoints),
                failure_config=FailureConfig(max_failures=job.max_failures),
                # Ray Train's INFO lines repeat every report's metrics; the driver's progress line says it once
                logging_config=LoggingConfig(log_level="WARNING"),
            ),
        )
        result = trainer.fit()
    finally:
        if own_ray:
            ray.shutdown()
    seconds = time.perf_counter() - started

    checkpoint_path = None
    if result.checkpoint is not None:
        checkpoint_path = str(Path(result.checkpoint.path) / CHECKPOINT_FILE)
    metrics = read_metrics(run)
    final = {k: float(v) for k, v in (metrics[-1] if metrics else {}).items() if isinstance(v, (int, float))}
    steps = int(final.get("step", 0))
    nan_report = run / NAN_REPORT
    model_path = None
    if nan_report.is_file():
        details = json.loads(nan_report.read_text())
        status = "stopped_nan"
        message = (f"stopped at step {details['step']}: non-finite loss {details['non_finite']}; the last good "
                   f"checkpoint (step {details['last_good_checkpoint_step']}) is intact at {checkpoint_path}")
    else:
        status = "completed"
        if checkpoint_path:
            model_path = str(run / MODEL_FILE)
            shutil.copyfile(checkpoint_path, model_path)  # the exported model: load_generator(model.pt)
        message = (f"completed {steps} steps in {seconds:.1f} s ({stop_reason(job, steps, int(final.get('epoch', 0)))}); "
                   f"model exported to {model_path}")
    rates = [m["samples_per_s"] for m in metrics[1:] if "samples_per_s" in m] or \
            [m["samples_per_s"] for m in metrics if "samples_per_s" in m]
    outcome = TrainOutcome(
        run_dir=str(run), status=status, message=message, steps=steps, epochs=int(final.get("epoch", 0)),
        final_metrics=final, model_path=model_path, checkpoint_path=checkpoint_path,
        tensorboard_dir=str(run / "tensorboard"), metrics_path=str(run / METRICS_FILE), seconds=seconds,
        samples_per_second=sum(rates) / len(rates) if rates else None, dataset_fingerprint=fingerprint,
    )
    (run / SUMMARY_FILE).write_text(json.dumps({**outcome.model_dump(), "job": job.model_dump(mode="json")}, indent=2))
    return outcome
