"""The loop every Ray Train worker runs to train the mask predictor; launched by
``models.training.launch.run_training(job, loop=predictor_loop_per_worker)`` like the vid2vid loop, with
the same run folder outputs (metrics.jsonl, TensorBoard events, checkpoint.pt through ``ray.train.report``).

Resumption: Ray's own latest checkpoint (a restarted worker group), else ``job.resume_from``, else fresh.
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
from models.training.loop import ATTEMPTS_FILE, CHECKPOINT_FILE, METRICS_FILE, NAN_REPORT, _all_finite, worker_setup
from models.vid2vid.checkpoint import save_checkpoint
from storage.dataset import ClipWindowDataset
from storage.layout import DatasetLayout

from .checkpoint import read_state
from .config import PredictorConfig
from .trainer import PredictorTrainer


def _restore(trainer: PredictorTrainer, job: TrainJob) -> str:
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trainer.load_state_dict(read_state(Path(folder) / CHECKPOINT_FILE))
        return "ray-checkpoint"
    if job.resume_from:
        trainer.load_state_dict(read_state(job.resume_from))
        return f"resume-from:{job.resume_from}"
    return "fresh"


def _report(metrics: dict[str, float], trainer: PredictorTrainer | None, rank: int) -> None:
    if trainer is None or rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(Path(folder) / CHECKPOINT_FILE, trainer.state_dict())
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def predictor_loop_per_worker(job_data: dict) -> None:
    job, rank, world, device = worker_setup(job_data)
    config = PredictorConfig.model_validate(job.model)
    trainer = PredictorTrainer(config, device, distributed=world > 1)
    origin = _restore(trainer, job)
    dataset = ClipWindowDataset(DatasetLayout(Path(job.data_root), job.dataset), config.window, split="train",
                                stages=job.stages, stride=config.train.stride, rank=rank, world_size=world)
    run = job.run_path
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run / "tensorboard"))
        with open(run / ATTEMPTS_FILE, "a") as handle:
            handle.write(json.dumps({"start_step": trainer.step, "origin": origin, "workers": world}) + "\n")
    epochs = job.epochs or config.train.epochs
    last_checkpoint = trainer.step
    done = job.max_steps is not None and trainer.step >= job.max_steps
    while trainer.epoch < epochs and not done:
        loader = DataLoader(dataset, batch_size=config.train.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(config.train.seed * 1000 + trainer.epoch))
        for batch in loader:
            started = time.perf_counter()
            losses = trainer.train_step(batch)
            seconds = time.perf_counter() - started
            if not _all_finite(losses, device):
                if rank == 0:
                    (run / NAN_REPORT).write_text(json.dumps({"step": trainer.step, "non_finite": losses,
                                                              "last_good_checkpoint_step": last_checkpoint}))
                ray.train.report({"step": float(trainer.step), "nan_stop": 1.0})
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
                _report(metrics, trainer, rank)
                last_checkpoint = trainer.step
            elif trainer.step % job.report_every == 0:
                _report(metrics, None, rank)
            if done:
                break
        if not done:
            trainer.epoch += 1
    if trainer.step != last_checkpoint:
        _report({"step": float(trainer.step), "epoch": float(trainer.epoch), "final": 1.0}, trainer, rank)
    if writer is not None:
        writer.close()
