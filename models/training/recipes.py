"""Each model kind's trainer as the one training loop drives it (``WorkerModel``), built on a Ray worker.

vid2vid's is here; the mask predictor's is in ``models/prediction/recipe.py`` (imported only for its jobs, so
a vid2vid worker never loads it). A new kind adds one builder and one entry in ``BUILDERS``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from models.training.job import TrainJob
from models.training.precision import prepare_modules, training_precision
from models.training.trainable import WorkerModel
from storage.dataset import ClipWindowDataset
from storage.errors import StorageError
from storage.layout import DatasetLayout
from storage.manifest import read_manifest

#: a model config's ``kind`` -> "module:function" building its WorkerModel(job, device, rank, world)
BUILDERS = {
    "vid2vid": "models.training.recipes:vid2vid_worker_model",
    "mask-predictor": "models.prediction.recipe:predictor_worker_model",
}
DIAGNOSTICS_FILE = "diagnostics.jsonl"  # per-frame held-out curves; their summaries also go to metrics.jsonl
DIAGNOSTIC_FRAMES = 24  # frames of the held-out clip rolled out (the demo's clip length)


def worker_model(job: TrainJob, device: torch.device, rank: int, world: int) -> WorkerModel:
    """The trainer of ``job.model_kind`` on worker ``rank`` of ``world``."""
    module, _, name = BUILDERS[job.model_kind].partition(":")
    return getattr(importlib.import_module(module), name)(job, device, rank, world)


def vid2vid_worker_model(job: TrainJob, device: torch.device, rank: int, world: int) -> WorkerModel:
    from models.vid2vid.checkpoint import load_checkpoint
    from models.vid2vid.config import ModelConfig
    from models.vid2vid.trainer import Vid2VidTrainer

    config = ModelConfig.model_validate(job.model)
    trainer = Vid2VidTrainer(config, device=device, weights_dir=job.weights_dir)
    precision = training_precision(device, job.bf16)

    def distribute() -> None:
        """Channels-last for bf16 on CPU, then DDP around G and D (unused parameters searched for only where
        there can be some)."""
        prepare_modules(device, precision, trainer.G, trainer.D)
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            unused_g, unused_d = trainer.parameters_may_go_unused()
            trainer.G = DistributedDataParallel(trainer.G, device_ids=ids, find_unused_parameters=unused_g)
            trainer.D = DistributedDataParallel(trainer.D, device_ids=ids, find_unused_parameters=unused_d)

    clip = held_out_clip(job) if job.diagnose_every and rank == 0 else None  # rank 0 writes the run's outputs
    return WorkerModel(trainer=trainer, window=job.window_frames or config.train.max_seq_len, stride=None,
                       batch_size=config.train.batch_size, seed=config.train.seed, epochs=config.train.epochs,
                       precision=precision, loss_prefixes=("G_", "D_"), read_state=load_checkpoint,
                       load_weights=trainer.load_weights, distribute=distribute,
                       diagnose=None if clip is None else (lambda writer, run, step: diagnose(trainer, clip, writer, run, step)))


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


def diagnose(trainer, clip: dict[str, torch.Tensor], writer, run: Path, step: int) -> dict[str, float]:  # noqa: ANN001
    """Roll the generator out on the held-out clip; TensorBoard gets every curve, diagnostics.jsonl the per-frame
    lists; returns the summaries (``diag_*``) for the step's metrics row (and so the progress artifact)."""
    from models.vid2vid.diagnostics import rollout_diagnostics
    from models.vid2vid.trainer import unwrap

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
