"""The loop every Ray Train worker runs: its share of windows, DDP-wrapped G and D, reports and checkpoints.

Resumption order: Ray's own latest checkpoint (a restarted worker group), else ``job.resume_from``
(an earlier run, continued), else ``job.init_from`` (a model file's weights, new optimisers, step 0), else a
fresh model. A non-finite loss on any worker stops every worker at the same
step (the flag is all-reduced), before a checkpoint could record the damage.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

import ray.train
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from models.training.job import TrainJob
from models.training.precision import autocast, prepare_modules, training_precision
from models.vid2vid.checkpoint import load_checkpoint, save_checkpoint
from models.vid2vid.config import ModelConfig
from models.vid2vid.diagnostics import rollout_diagnostics
from models.vid2vid.trainer import Vid2VidTrainer, unwrap
from storage.dataset import ClipWindowDataset
from storage.errors import StorageError
from storage.layout import DatasetLayout
from storage.manifest import read_manifest

CHECKPOINT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.json"  # where in its epoch the checkpoint was taken, so a restart skips those batches
NAN_REPORT = "nan_stop.json"
METRICS_FILE = "metrics.jsonl"
DIAGNOSTICS_FILE = "diagnostics.jsonl"  # per-frame held-out curves; their summaries also go to metrics.jsonl
DIAGNOSTIC_FRAMES = 24  # frames of the held-out clip rolled out (the demo's clip length)
FAILURE_MARKER = ".failure_injected"
ATTEMPTS_FILE = "attempts.jsonl"


def _quiet_report_lines() -> None:
    """Ray Train logs every report's whole metrics dict at INFO through a logger named by its file path, outside
    the ``ray.train`` hierarchy that its LoggingConfig reaches; the driver's progress line already says it once."""
    try:
        from ray.train.v2._internal.execution import context as ray_train_context
    except ImportError:  # another Ray Train layout: its lines stay
        return
    logging.getLogger(ray_train_context.__file__).setLevel(logging.WARNING)


def worker_setup(job_data: dict) -> tuple[TrainJob, int, int, torch.device]:
    """Every per-worker loop's start (vid2vid's and the mask predictor's): the job, rank, world size, this
    worker's share of the CPU threads, and its device (its GPU when the job asks for one and it exists)."""
    job = TrainJob.model_validate(job_data)
    _quiet_report_lines()
    context = ray.train.get_context()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, context.get_local_world_size())))
    use_gpu = job.gpus_per_worker > 0 and torch.cuda.is_available()
    device = ray.train.torch.get_device() if use_gpu else torch.device("cpu")
    return job, context.get_world_rank(), context.get_world_size(), device


def _restore(trainer: Vid2VidTrainer, job: TrainJob) -> tuple[str, int]:
    """Load the state to start from; returns (origin, batches of the current epoch already trained).

    Ray's checkpoint comes first, and it is only ever this run's own (its worker group restarted): checkpoints
    Ray registered before an explicit ``resume_from`` were moved aside by the driver
    (``launch.supersede_ray_state``), so the named file always wins over an older run's state."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(load_checkpoint(Path(folder) / CHECKPOINT_FILE))
            progress = json.loads((Path(folder) / PROGRESS_FILE).read_text())
        return "ray-checkpoint", int(progress["batches_done"])
    if job.resume_from:
        trainer.load_state_dict(load_checkpoint(job.resume_from))
        progress = Path(job.resume_from).with_name(PROGRESS_FILE)  # a Ray checkpoint's: where in its epoch it was
        done = json.loads(progress.read_text()) if progress.is_file() else {}
        return f"resume-from:{job.resume_from}", int(done.get("batches_done", 0)) if done.get("epoch") == trainer.epoch else 0
    if job.init_from:
        parts = trainer.load_weights(load_checkpoint(job.init_from))
        return f"init-from:{job.init_from} ({', '.join(parts)})", 0
    return "fresh", 0


def inject_worker_failure(job: TrainJob, step: int, rank: int, world: int) -> None:
    """The test-only fault ``job.faults.failure_at_step``: the last worker dies without warning, once per run
    (Ray then restarts the group from the last checkpoint)."""
    run = job.run_path
    if (job.faults.failure_at_step is not None and step == job.faults.failure_at_step and rank == world - 1
            and not (run / FAILURE_MARKER).exists()):
        (run / FAILURE_MARKER).write_text(f"worker {rank} killed at step {step}\n")
        os._exit(1)


def _all_finite(losses: dict[str, float], device: torch.device) -> bool:
    bad = torch.tensor([0.0 if all(map(lambda v: v == v and abs(v) != float("inf"), losses.values())) else 1.0],
                       device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(bad)
    return bad.item() == 0.0


def _report(metrics: dict[str, float], trainer: Vid2VidTrainer | None, rank: int, batches_done: int = 0) -> None:
    """Every worker reports (Ray Train synchronises on it); only rank 0 attaches the checkpoint."""
    if trainer is None or rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(Path(folder) / CHECKPOINT_FILE, trainer)
        (Path(folder) / PROGRESS_FILE).write_text(json.dumps({"epoch": trainer.epoch, "batches_done": batches_done}))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def held_out_clip(job: TrainJob) -> dict[str, torch.Tensor] | None:
    """The first validation clip (its first ``DIAGNOSTIC_FRAMES`` frames, with the reference flow) that the
    diagnostics roll out; None when the dataset holds out none."""
    layout = DatasetLayout(Path(job.data_root), job.dataset)
    clips = sorted((r for r in read_manifest(layout) if r.status == "ok" and r.split == "val" and r.n_frames > 1),
                   key=lambda r: r.clip_id)
    if not clips:
        return None
    frames = min(clips[0].n_frames, DIAGNOSTIC_FRAMES)
    try:
        return ClipWindowDataset(layout, frames, split="val", stages=job.stages, clip_ids=[clips[0].clip_id])[0]
    except StorageError as error:  # e.g. no flow shards for it: diagnostics are a courtesy, training goes on
        print(f"worker 0: no held-out diagnostics ({error})")
        return None


def diagnose(trainer: Vid2VidTrainer, clip: dict[str, torch.Tensor], writer, run: Path, step: int) -> dict[str, float]:  # noqa: ANN001
    """Roll the generator out on the held-out clip; TensorBoard gets every curve, diagnostics.jsonl the per-frame
    lists; returns the summaries (``diag_*``) for the step's metrics row (and so the progress artifact)."""
    result = rollout_diagnostics(unwrap(trainer.G).generator, clip)
    summary = {f"diag_{k}": float(v) for k, v in result.items() if not isinstance(v, list) and v == v}
    for key, value in summary.items():
        writer.add_scalar(f"diagnostics/{key.removeprefix('diag_')}", value, step)
    for t, (free, teacher) in enumerate(zip(result["l1_free"], result["l1_teacher"]), 1):  # type: ignore[call-overload]
        writer.add_scalar(f"heldout_l1_per_frame/frame_{t:02d}_free_running", free, step)  # side by side in one section
        writer.add_scalar(f"heldout_l1_per_frame/frame_{t:02d}_teacher_forced", teacher, step)
    with open(run / DIAGNOSTICS_FILE, "a") as handle:
        handle.write(json.dumps({"step": step, **result}) + "\n")
    return summary


def train_loop_per_worker(job_data: dict) -> None:
    job, rank, world, device = worker_setup(job_data)
    config = ModelConfig.model_validate(job.model)
    trainer = Vid2VidTrainer(config, device=device, weights_dir=job.weights_dir)
    origin, skip_batches = _restore(trainer, job)
    precision = training_precision(device, job.bf16)
    prepare_modules(device, precision, trainer.G, trainer.D)
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        unused_g, unused_d = trainer.parameters_may_go_unused()  # searched for only where there can be some
        trainer.G = DistributedDataParallel(trainer.G, device_ids=ids, find_unused_parameters=unused_g)
        trainer.D = DistributedDataParallel(trainer.D, device_ids=ids, find_unused_parameters=unused_d)

    window = job.window_frames or config.train.max_seq_len
    dataset = ClipWindowDataset(DatasetLayout(Path(job.data_root), job.dataset), window, split="train",
                                stages=job.stages, rank=rank, world_size=world)
    epochs = job.epochs or config.train.epochs
    run = job.run_path
    writer, clip = None, None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run / "tensorboard"))
        clip = held_out_clip(job) if job.diagnose_every else None
        print(f"worker 0/{world}: {len(dataset)} windows of {window} frames, start step {trainer.step}, from {origin}, "
              f"{precision}")
        with open(run / ATTEMPTS_FILE, "a") as handle:  # one line per (re)start of the worker group
            handle.write(json.dumps({"start_step": trainer.step, "origin": origin, "workers": world}) + "\n")

    last_checkpoint_step = trainer.step
    epoch = trainer.epoch
    done = job.max_steps is not None and trainer.step >= job.max_steps
    while epoch < epochs and not done:
        trainer.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(config.train.seed * 1000 + epoch))
        for batch_index, batch in enumerate(loader):
            if batch_index < skip_batches:  # trained before the restart: same shuffle, same order
                continue
            inject_worker_failure(job, trainer.step, rank, world)
            started = time.perf_counter()
            with autocast(device, precision):
                losses = trainer.train_step(batch)
            if job.faults.nan_at_step is not None and trainer.step == job.faults.nan_at_step:
                losses["G_total"] = float("nan")
            seconds = time.perf_counter() - started
            step = trainer.step
            if not _all_finite(losses, device):
                if rank == 0:
                    bad = {k: v for k, v in losses.items() if not (v == v and abs(v) != float("inf"))}
                    report = {"step": step, "epoch": epoch, "non_finite": bad, "last_good_checkpoint_step": last_checkpoint_step}
                    (run / NAN_REPORT).write_text(json.dumps(report, indent=2))
                ray.train.report({"step": float(step), "nan_stop": 1.0, "last_good_step": float(last_checkpoint_step)})
                return
            metrics = {**losses, "step": float(step), "epoch": float(epoch),
                       "samples_per_s": config.train.batch_size * world / seconds, "seconds_per_step": seconds}
            if writer is not None and clip is not None and step % job.diagnose_every == 0:
                metrics.update(diagnose(trainer, clip, writer, run, step))
            if writer is not None:
                for key, value in losses.items():
                    writer.add_scalar(f"loss/{key}" if key.startswith(("G_", "D_")) else key, value, step)
                writer.add_scalar("perf/samples_per_s", metrics["samples_per_s"], step)
                with open(run / METRICS_FILE, "a") as handle:
                    handle.write(json.dumps(metrics) + "\n")
            done = job.max_steps is not None and step >= job.max_steps
            checkpoint_due = done or step - last_checkpoint_step >= job.checkpoint_every
            if checkpoint_due:
                _report(metrics, trainer, rank, batch_index + 1)
                last_checkpoint_step = step
            elif step % job.report_every == 0:
                _report(metrics, None, rank)
            if done:
                break
        skip_batches = 0
        if not done:
            epoch += 1
            trainer.epoch = epoch
    if trainer.step != last_checkpoint_step:
        _report({"step": float(trainer.step), "epoch": float(epoch), "final": 1.0}, trainer, rank)  # epoch complete
    if writer is not None:
        writer.close()
