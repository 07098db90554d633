"""Spatio-temporally progressive training (Sec. 4): coarse scale first, sequence length doubling; or NVIDIA's
released schedule (``train.schedule: official``), which ``scripts/compare_official_training.py`` checks."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig


@dataclass(frozen=True)
class Stage:
    n_scales: int  # active generator scales, coarsest first
    seq_len: int  # frames per training sequence (the n_prev given ones included)
    scale_factor: int  # full resolution / training resolution
    finest_only: bool = False  # coarser scales frozen (NVIDIA's --niter_fix_global epochs)


def official_generated_frames(initial: int, epoch: int, epochs_per_doubling: int, cap: int, chunk: int) -> int:
    """Frames NVIDIA's loader has G generate per sequence in (0-based) ``epoch``: ``--n_frames_total`` doubled
    at the end of every ``--niter_step``-th epoch (``update_training_batch``), capped by the data (``cap``),
    rounded down to whole chunks of ``chunk`` frames (``get_video_params``)."""
    frames = min(cap, initial * 2 ** (epoch // epochs_per_doubling))
    per_load = min(frames, chunk)
    return per_load * (frames // per_load) if per_load > 0 else 0


class ProgressiveSchedule:
    """"paper": spatial stage k (k = 0..n_scales-1) lasts ``epochs_per_scale`` epochs (the last one forever);
    within each stage the sequence length starts at ``initial_seq_len`` and doubles every
    ``epochs_per_doubling`` epochs up to ``max_seq_len``. "official": see ``TrainConfig.schedule``."""

    def __init__(self, config: ModelConfig) -> None:
        self.n_scales = config.generator.n_scales
        self.n_prev = config.generator.n_prev
        self.train = config.train

    def at(self, epoch: int) -> Stage:
        t = self.train
        if t.schedule == "official":
            generated = official_generated_frames(t.initial_seq_len - self.n_prev, epoch, t.epochs_per_doubling,
                                                  t.max_seq_len - self.n_prev, t.frames_per_step)
            return Stage(n_scales=self.n_scales, seq_len=generated + self.n_prev, scale_factor=1,
                         finest_only=self.n_scales > 1 and epoch < t.epochs_finest_only)
        stage = min(epoch // t.epochs_per_scale, self.n_scales - 1)
        within = epoch - stage * t.epochs_per_scale
        seq_len = min(t.max_seq_len, t.initial_seq_len * 2 ** (within // t.epochs_per_doubling))
        n_scales = stage + 1
        return Stage(n_scales=n_scales, seq_len=seq_len, scale_factor=2 ** (self.n_scales - n_scales))
