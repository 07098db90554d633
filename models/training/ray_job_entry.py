"""The Ray Job's entrypoint on the cluster: ``python -m models.training.ray_job_entry RUN/job.json``.

It runs the same driver as the embedded path (``run_training``: data checked first, then TorchTrainer with
the run folder as ``storage_path``), joined to the cluster the job runs on; the job file's model config
names the model kind, trained by the one loop. The exit code tells Ray whether the run produced a model;
``summary.json`` in the run folder tells the flow the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path

from models.training.job import TrainJob
from models.training.launch import run_training

USAGE = "usage: python -m models.training.ray_job_entry RUN_DIR/job.json"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    job = TrainJob.model_validate_json(Path(argv[0]).read_text())
    outcome = run_training(job)
    print(f"{job.model_kind} training {outcome.status}: {outcome.message}", flush=True)
    return 0 if outcome.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
