"""Where things are: the data/runs/weights roots and the Dask/Ray service addresses, resolved in one place.

Every flow, deployment and the CLI resolves them the same way: the explicit argument, then the
environment (``docker-compose.yml`` sets these for the cluster form), then the embedded default. A
deployment started by a Prefect worker therefore finds the services its environment names, whichever
flow it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "VID2VID_DATA_ROOT"
RUNS_ROOT_ENV = "VID2VID_RUNS_ROOT"
WEIGHTS_DIR_ENV = "VID2VID_WEIGHTS_DIR"
DASK_ADDRESS_ENV = "VID2VID_DASK_ADDRESS"
RAY_ADDRESS_ENV = "VID2VID_RAY_ADDRESS"


def _setting(override: str | os.PathLike[str] | None, env: str, default: str | None) -> str | None:
    """argument → ``$env`` → default; an empty string counts as unset."""
    if override is not None and str(override) != "":
        return str(override)
    return os.environ.get(env) or default


def data_root(override: str | os.PathLike[str] | None = None) -> Path:
    """argument, then ``$VID2VID_DATA_ROOT``, then ./data."""
    return Path(_setting(override, DATA_ROOT_ENV, "data"))  # type: ignore[arg-type]


def runs_root(override: str | os.PathLike[str] | None = None) -> Path:
    """argument, then ``$VID2VID_RUNS_ROOT``, then ./runs."""
    return Path(_setting(override, RUNS_ROOT_ENV, "runs"))  # type: ignore[arg-type]


def reference_runs_root(override: str | os.PathLike[str] | None = None) -> Path:
    """argument, then ``<runs root>-reference`` beside the runs root: the shipped models' long training runs are
    kept apart, since a rebuild on the same data and config takes the newest run of its runs root as its own."""
    if override is not None:
        return Path(override)
    runs = runs_root()
    return runs.with_name(f"{runs.name}-reference")


def weights_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """argument, then ``$VID2VID_WEIGHTS_DIR``, then ./weights."""
    return Path(_setting(override, WEIGHTS_DIR_ENV, "weights"))  # type: ignore[arg-type]


def dask_address(override: str | None = None) -> str | None:
    """argument, then ``$VID2VID_DASK_ADDRESS``; None means: start a local Dask cluster."""
    return _setting(override, DASK_ADDRESS_ENV, None)


def ray_address(override: str | None = None) -> str | None:
    """argument, then ``$VID2VID_RAY_ADDRESS``; None means: start a local Ray instance."""
    return _setting(override, RAY_ADDRESS_ENV, None)
