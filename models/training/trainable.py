"""What the one training loop (``models/training/loop.py``) needs of a model: a small protocol, and the
per-kind facts around it. imaginaire's single hooked trainer is the model: cadence, the NaN policy, faults,
resume and the run folder's outputs live in the loop once; each kind of model only says how it trains a
step, what its state is, and how its data is windowed.

Kinds: ``vid2vid`` (``models/vid2vid``) and ``mask-predictor`` (``models/prediction``); a job's kind is its
model config's ``kind`` (vid2vid configs have none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from models.training.precision import Precision


class Trainable(Protocol):
    """A model's trainer as the loop drives it."""

    step: int  # optimisation steps taken
    epoch: int

    def set_epoch(self, epoch: int) -> object: ...

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step; the loss terms by name, as floats."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs (weights, optimisers, step, epoch) as one checkpoint dict."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class WorkerModel:
    """One kind's trainer on one worker, with what the loop must know about it.

    ``diagnose``: rank 0's held-out diagnostics at a step (vid2vid's rollout curves), returning summary
    metrics; None where the kind has none. ``load_weights``: a model file's weights as a new run's start
    (``job.init_from``), returning the parts loaded; None where the kind has no such start."""

    trainer: Trainable
    window: int  # frames per training sample
    stride: int | None  # frames between the starts of consecutive windows; None: the window (no overlap)
    batch_size: int
    seed: int  # the shuffle of epoch e is seeded with seed * 1000 + e
    epochs: int  # the config's epochs (a job's own limit wins)
    precision: Precision
    loss_prefixes: tuple[str, ...]  # loss names under TensorBoard's loss/ section
    read_state: Callable[[Path], dict[str, Any]]  # a checkpoint file's dict, its errors naming the file
    load_weights: Callable[[dict[str, Any]], list[str]] | None = None
    distribute: Callable[[], None] | None = None  # after the restore: memory layout, DDP wrapping
    diagnose: Callable[[Any, Path, int], dict[str, float]] | None = None  # (TensorBoard writer, run folder, step)
