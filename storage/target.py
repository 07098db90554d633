"""What one request works on, resolved once at its entry: the dataset's layout, the runs root, and where
weights and the Dask/Ray services are.

A flow's parameters name these as strings (the form the UI and the CLI fill in). The flow's entry turns them
into a ``Target`` with ``resolve_target`` — defaults from ``storage.locations`` (argument, then environment,
then ./data, ./runs ...), names checked, roots resolved — and everything below it (its body, its tasks, the
full rebuild's sub-flows) takes the objects instead of deriving them from the strings again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from storage import locations
from storage.layout import DatasetLayout, check_name


@dataclass(frozen=True)
class Target:
    """A dataset under a data root, the runs root beside it, and the settings that say where weights and the
    services are. ``weights_dir`` stays as the user gave it (None: each process that reads weights resolves
    ``$VID2VID_WEIGHTS_DIR`` or ./weights itself, as preprocessing fingerprints record it)."""

    layout: DatasetLayout
    runs: Path
    weights_dir: str | None = None
    dask_address: str | None = None
    ray_address: str | None = None

    @property
    def dataset(self) -> str:
        return self.layout.dataset

    @property
    def root(self) -> Path:
        """The data root, resolved."""
        return self.layout.root


def resolve_target(dataset: str, data_root: str | os.PathLike[str] | None = None,
                   runs_root: str | os.PathLike[str] | None = None, weights_dir: str | None = None,
                   dask_address: str | None = None, ray_address: str | None = None) -> Target:
    """The request's target: the explicit values, else the environment, else the embedded defaults; the
    dataset name checked and the data and runs roots resolved, once."""
    layout = DatasetLayout(locations.data_root(data_root).resolve(), check_name(dataset, "dataset"))
    return Target(layout=layout, runs=locations.runs_root(runs_root).resolve(), weights_dir=weights_dir,
                  dask_address=locations.dask_address(dask_address), ray_address=locations.ray_address(ray_address))
