"""The Ray Job's entrypoint on the cluster: ``python -m models.training.ray_job_entry RUN/job.json [MODULE:FUNCTION]``.

It runs the same driver as the embedded path (``run_training``: data checked first, then TorchTrainer with
the run folder as ``storage_path``), joined to the cluster the job runs on; the optional second argument
names the per-worker loop (default: vid2vid's; the mask predictor names its own). The exit code tells Ray
whether the run produced a model; ``summary.json`` in the run folder tells the flow the rest.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from models.training.job import TrainJob
from models.training.launch import run_training
from models.training.loop import train_loop_per_worker

USAGE = "usage: python -m models.training.ray_job_entry RUN_DIR/job.json [MODULE:FUNCTION]"


def resolve_loop(reference: str | None) -> Callable[[dict], None]:
    """``package.module:function`` → the per-worker loop; only functions of this project's ``models`` package."""
    if not reference:
        return train_loop_per_worker
    module, _, name = reference.partition(":")
    if not module.startswith("models.") or not name:
        raise ValueError(f"loop {reference!r} is not a models.<module>:<function> of this project")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(USAGE, file=sys.stderr)
        return 2
    job = TrainJob.model_validate_json(Path(argv[0]).read_text())
    outcome = run_training(job, loop=resolve_loop(argv[1] if len(argv) == 2 else None))
    print(f"vid2vid training {outcome.status}: {outcome.message}", flush=True)
    return 0 if outcome.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
