"""The loop every Ray Train worker runs to train the mask predictor; launched by
``models.training.launch.run_training(job, loop=predictor_loop_per_worker)`` like the vid2vid loop, with
the same run folder outputs (metrics.jsonl, TensorBoard events, checkpoint.pt through ``ray.train.report``).

Its rules are the vid2vid loop's (``models.training.loop``): Ray's own latest checkpoint (a restarted worker
group; older runs' were moved aside by the driver, so an explicit ``job.resume_from`` wins), else
``job.resume_from``, else fresh; a restart skips the batches of its epoch it already trained (no step twice);
a non-finite loss stops every worker with ``nan_stop.json`` (the flow then fails); ``job.faults`` injects the
same faults.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import ray.train
import torch
from torch.utils.data import DataLoader

from models.training.job import TrainJob
from models.training.loop import (ATTEMPTS_FILE, CHECKPOINT_FILE, METRICS_FILE, NAN_REPORT, PROGRESS_FILE,
                                   _all_finite, inject_worker_failure, worker_setup)
from models.vid2vid.checkpoint import save_checkpoint
from storage.dataset import ClipWindowDataset
from storage.layout import DatasetLayout

from .checkpoint import read_state
from .config import PredictorConfig
from .trainer import PredictorTrainer


def _batches_done(progress: Path, epoch: int) -> int:
    done = json.loads(progress.read_text()) if progress.is_file() else {}
    return int(done.get("batches_done", 0)) if done.get("epoch") == epoch else 0


def _restore(trainer: PredictorTrainer, job: TrainJob) -> tuple[str, int]:
    """(origin, batches of the current epoch already trained), as ``models.training.loop._restore``."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(read_state(Path(folder) / CHECKPOINT_FILE))
            return "ray-checkpoint", _batches_done(Path(folder) / PROGRESS_FILE, trainer.epoch)
    if job.resume_from:
        trainer.load_state_dict(read_state(job.resume_from))
        return f"resume-from:{job.resume_from}", _batches_done(Path(job.resume_from).with_name(PROGRESS_FILE),
                                                               trainer.epoch)
    return "fresh", 0


def _report(metrics: dict[str, float], trainer: PredictorTrainer | None, rank: int, batches_done: int = 0) -> None:
    if trainer is None or rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(Path(folder) / CHECKPOINT_FILE, trainer.state_dict())
        (Path(folder) / PROGRESS_FILE).write_text(json.dumps({"epoch": trainer.epoch, "batches_done": batches_done}))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def predictor_loop_per_worker(job_data: dict) -> None:
    job, rank, world, device = worker_setup(job_data)
    config = PredictorConfig.model_validate(job.model)
    trainer = PredictorTrainer(config, device, distributed=world > 1)
    origin, skip_batches = _restore(trainer, job)
    dataset = ClipWindowDataset(DatasetLayout(Path(job.data_root), job.dataset), config.window, split="train",
                                stages=job.stages, stride=config.train.stride, rank=rank, world_size=world)
    run = job.run_path
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run / "tensorboard"))
        with open(run / ATTEMPTS_FILE, "a") as handle:
            handle.write(json.dumps({"start_step": trainer.step, "origin": origin, "workers": world,
                                     "skipped_batches": skip_batches}) + "\n")
    epochs = job.epochs or config.train.epochs
    last_checkpoint = trainer.step
    done = job.max_steps is not None and trainer.step >= job.max_steps
    while trainer.epoch < epochs and not done:
        loader = DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(config.train.seed * 1000 + trainer.epoch))
        for batch_index, batch in enumerate(loader):
            if batch_index < skip_batches:  # trained before the restart: same shuffle, same order
                continue
            inject_worker_failure(job, trainer.step, rank, world)
            started = time.perf_counter()
            losses = trainer.train_step(batch)
            if job.faults.nan_at_step is not None and trainer.step == job.faults.nan_at_step:
                losses[next(iter(losses))] = float("nan")
            seconds = time.perf_counter() - started
            if not _all_finite(losses, device):
                if rank == 0:
                    bad = {k: v for k, v in losses.items() if not (v == v and abs(v) != float("inf"))}
                    (run / NAN_REPORT).write_text(json.dumps({"step": trainer.step, "epoch": trainer.epoch,
                                                              "non_finite": bad,
                                                              "last_good_checkpoint_step": last_checkpoint}))
                ray.train.report({"step": float(trainer.step), "nan_stop": 1.0, "last_good_step": float(last_checkpoint)})
                return
            metrics = {**losses, "step": float(trainer.step), "epoch": float(trainer.epoch),
                       "samples_per_s": len(batch["semantic"]) * world / seconds, "seconds_per_step": seconds}
            if writer is not None:
                for key, value in metrics.items():
                    writer.add_scalar(f"loss/{key}" if key.startswith("P_") else f"perf/{key}", value, trainer.step)
                with open(run / METRICS_FILE, "a") as handle:
                    handle.write(json.dumps(metrics) + "\n")
            done = job.max_steps is not None and trainer.step >= job.max_steps
            if done or trainer.step - last_checkpoint >= job.checkpoint_every:
                _report(metrics, trainer, rank, batch_index + 1)
                last_checkpoint = trainer.step
            elif trainer.step % job.report_every == 0:
                _report(metrics, None, rank)
            if done:
                break
        skip_batches = 0
        if not done:
            trainer.epoch += 1
    if trainer.step != last_checkpoint:
        _report({"step": float(trainer.step), "epoch": float(trainer.epoch), "final": 1.0}, trainer, rank)
    if writer is not None:
        writer.close()
