"""Distributed vid2vid training on Ray Train: the per-worker loop, the launcher, and run outputs.

No Prefect here: ``tasks/train.py`` wraps ``run_training`` in a Prefect task; a notebook can call it too.
"""

from .job import FaultInjection, TrainJob, TrainOutcome, TrainSettings, input_stages
from .launch import run_training

__all__ = ["FaultInjection", "TrainJob", "TrainOutcome", "TrainSettings", "input_stages", "run_training"]
