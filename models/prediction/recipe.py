"""The mask predictor as the one training loop (``models/training/loop.py``) drives it."""

from __future__ import annotations

import torch

from models.training.job import TrainJob
from models.training.trainable import WorkerModel

from .checkpoint import read_state
from .config import PredictorConfig
from .trainer import PredictorTrainer


def predictor_worker_model(job: TrainJob, device: torch.device, rank: int, world: int) -> WorkerModel:
    """Float32 (the predictor is small; no autocast), gradients averaged by the trainer itself: one rollout
    calls the network several times before ``backward``, which DDP's reducer does not allow."""
    config = PredictorConfig.model_validate(job.model)
    trainer = PredictorTrainer(config, device, distributed=world > 1)
    return WorkerModel(trainer=trainer, window=config.window, stride=config.train.stride,
                       batch_size=config.train.batch_size, seed=config.train.seed, epochs=config.train.epochs,
                       precision="fp32", loss_prefixes=("P_",), read_state=read_state)
