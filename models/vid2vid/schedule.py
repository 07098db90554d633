"""Spatio-temporally progressive training (Sec. 4): coarse scale first, sequence length doubling."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig


@dataclass(frozen=True)
class Stage:
    n_scales: int  # active generator scales, coarsest first
    seq_len: int  # frames per training sequence
    scale_factor: int  # full resolution / training resolution


class ProgressiveSchedule:
    """Spatial stage k (k = 0..n_scales-1) lasts ``epochs_per_scale`` epochs (the last one forever);
    within each stage the sequence length starts at ``initial_seq_len`` and doubles every
    ``epochs_per_doubling`` epochs up to ``max_seq_len``."""

    def __init__(self, config: ModelConfig) -> None:
        self.n_scales = config.generator.n_scales
        self.train = config.train

    def at(self, epoch: int) -> Stage:
        t = self.train
        stage = min(epoch // t.epochs_per_scale, self.n_scales - 1)
        within = epoch - stage * t.epochs_per_scale
        seq_len = min(t.max_seq_len, t.initial_seq_len * 2 ** (within // t.epochs_per_doubling))
        n_scales = stage + 1
        return Stage(n_scales=n_scales, seq_len=seq_len, scale_factor=2 ** (self.n_scales - n_scales))
