"""Distributed vid2vid training on Ray Train: the per-worker loop, the launcher, and run outputs.

No Prefect here: ``tasks/train.py`` wraps ``run_training`` in a Prefect task; a notebook can call it too.
"""

from models.lazy import lazy_face

# public name -> submodule that defines it; loaded on first use (models/lazy.py says why)
_EXPORTS = {
    "FaultInjection": "job",
    "TrainJob": "job",
    "TrainOutcome": "job",
    "TrainSettings": "job",
    "input_stages": "job",
    "run_training": "launch",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_face(__name__, _EXPORTS)
