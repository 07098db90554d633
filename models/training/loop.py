"""The one loop every Ray Train worker runs, for every model kind (``models/training/recipes.py``): its share
of the windows, reports and checkpoints, the NaN policy, test faults and resume.

Resumption order: Ray's own latest checkpoint (a restarted worker group), else ``job.resume_from``
(an earlier run, continued), else ``job.init_from`` (a model file's weights, new optimisers, step 0), else a
fresh model. A restart skips the batches of its epoch it already trained (same shuffle: no step twice).
A non-finite loss on any worker stops every worker at the same step (the flag is all-reduced), before a
checkpoint could record the damage.
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
from torch.utils.data import DataLoader

from models.training.job import TrainJob
from models.training.precision import autocast
from models.training.recipes import worker_model
from models.training.trainable import Trainable, WorkerModel
from models.vid2vid.checkpoint import save_checkpoint
from storage.dataset import ClipWindowDataset
from storage.layout import DatasetLayout

CHECKPOINT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.json"  # where in its epoch the checkpoint was taken, so a restart skips those batches
NAN_REPORT = "nan_stop.json"
METRICS_FILE = "metrics.jsonl"
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
    """The job, rank, world size, this worker's share of the CPU threads, and its device (its GPU when the job
    asks for one and it exists)."""
    job = TrainJob.model_validate(job_data)
    _quiet_report_lines()
    context = ray.train.get_context()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, context.get_local_world_size())))
    use_gpu = job.gpus_per_worker > 0 and torch.cuda.is_available()
    device = ray.train.torch.get_device() if use_gpu else torch.device("cpu")
    return job, context.get_world_rank(), context.get_world_size(), device


def _batches_done(progress: Path, epoch: int) -> int:
    """Batches of ``epoch`` a checkpoint had trained (its progress.json beside it); 0 for another epoch's."""
    done = json.loads(progress.read_text()) if progress.is_file() else {}
    return int(done.get("batches_done", 0)) if done.get("epoch") == epoch else 0


def _restore(model: WorkerModel, job: TrainJob) -> tuple[str, int]:
    """Load the state to start from; returns (origin, batches of the current epoch already trained).

    Ray's checkpoint comes first, and it is only ever this run's own (its worker group restarted): checkpoints
    Ray registered before an explicit ``resume_from`` were moved aside by the driver
    (``launch.supersede_ray_state``), so the named file always wins over an older run's state."""
    trainer = model.trainer
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(model.read_state(Path(folder) / CHECKPOINT_FILE))
            return "ray-checkpoint", _batches_done(Path(folder) / PROGRESS_FILE, trainer.epoch)
    if job.resume_from:
        trainer.load_state_dict(model.read_state(Path(job.resume_from)))
        return f"resume-from:{job.resume_from}", _batches_done(Path(job.resume_from).with_name(PROGRESS_FILE),
                                                               trainer.epoch)
    if job.init_from:
        if model.load_weights is None:  # the driver refuses such a job first (launch.run_training)
            raise ValueError(f"a {job.model_kind} run has no init_from start")
        parts = model.load_weights(model.read_state(Path(job.init_from)))
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


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


def _all_finite(losses: dict[str, float], device: torch.device) -> bool:
    bad = torch.tensor([0.0 if all(map(_finite, losses.values())) else 1.0], device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(bad)
    return bad.item() == 0.0


def _report(metrics: dict[str, float], trainer: Trainable | None, rank: int, batches_done: int = 0) -> None:
    """Every worker reports (Ray Train synchronises on it); only rank 0 attaches the checkpoint."""
    if trainer is None or rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(Path(folder) / CHECKPOINT_FILE, trainer.state_dict())
        (Path(folder) / PROGRESS_FILE).write_text(json.dumps({"epoch": trainer.epoch, "batches_done": batches_done}))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _stop_on_nan(job: TrainJob, losses: dict[str, float], trainer: Trainable, rank: int, last_good: int) -> None:
    """Every worker reports the stop; rank 0 writes what was non-finite, where, and the last good checkpoint."""
    if rank == 0:
        bad = {k: v for k, v in losses.items() if not _finite(v)}
        report = {"step": trainer.step, "epoch": trainer.epoch, "non_finite": bad, "last_good_checkpoint_step": last_good}
        (job.run_path / NAN_REPORT).write_text(json.dumps(report, indent=2))
    ray.train.report({"step": float(trainer.step), "nan_stop": 1.0, "last_good_step": float(last_good)})


def _log(writer, model: WorkerModel, losses: dict[str, float], metrics: dict[str, float], run: Path) -> None:  # noqa: ANN001
    """Rank 0's record of a step: TensorBoard (losses, throughput) and a metrics.jsonl row."""
    step = int(metrics["step"])
    for key, value in losses.items():
        writer.add_scalar(f"loss/{key}" if key.startswith(model.loss_prefixes) else key, value, step)
    writer.add_scalar("perf/samples_per_s", metrics["samples_per_s"], step)
    with open(run / METRICS_FILE, "a") as handle:
        handle.write(json.dumps(metrics) + "\n")


def train_loop_per_worker(job_data: dict) -> None:
    job, rank, world, device = worker_setup(job_data)
    model = worker_model(job, device, rank, world)
    trainer = model.trainer
    origin, skip_batches = _restore(model, job)
    if model.distribute is not None:
        model.distribute()
    dataset = ClipWindowDataset(DatasetLayout(Path(job.data_root), job.dataset), model.window, split="train",
                                stages=job.stages, stride=model.stride, rank=rank, world_size=world)
    epochs = job.epochs or model.epochs
    run = job.run_path
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run / "tensorboard"))
        print(f"worker 0/{world}: {len(dataset)} windows of {model.window} frames, start step {trainer.step}, "
              f"from {origin}, {model.precision}")
        with open(run / ATTEMPTS_FILE, "a") as handle:  # one line per (re)start of the worker group
            handle.write(json.dumps({"start_step": trainer.step, "origin": origin, "workers": world,
                                     "skipped_batches": skip_batches}) + "\n")

    last_checkpoint_step = trainer.step
    epoch = trainer.epoch
    done = job.max_steps is not None and trainer.step >= job.max_steps
    while epoch < epochs and not done:
        trainer.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=model.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(model.seed * 1000 + epoch))
        for batch_index, batch in enumerate(loader):
            if batch_index < skip_batches:  # trained before the restart: same shuffle, same order
                continue
            inject_worker_failure(job, trainer.step, rank, world)
            started = time.perf_counter()
            with autocast(device, model.precision):
                losses = trainer.train_step(batch)
            if job.faults.nan_at_step is not None and trainer.step == job.faults.nan_at_step:
                losses[next(iter(losses))] = float("nan")
            seconds = time.perf_counter() - started
            step = trainer.step
            if not _all_finite(losses, device):
                _stop_on_nan(job, losses, trainer, rank, last_checkpoint_step)
                return
            samples = len(next(iter(batch.values())))
            metrics = {**losses, "step": float(step), "epoch": float(epoch), "samples_per_s": samples * world / seconds,
                       "seconds_per_step": seconds}
            if writer is not None and model.diagnose is not None and step % job.diagnose_every == 0:
                metrics.update(model.diagnose(writer, run, step))
            if writer is not None:
                _log(writer, model, losses, metrics, run)
            done = job.max_steps is not None and step >= job.max_steps
            if done or step - last_checkpoint_step >= job.checkpoint_every:
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
