"""Where a dataset's files live under the data root (docs/DESIGN.md, data contract).

Every path handed out here is checked to stay inside the data root, so a hostile or broken manifest can
never make the pipeline read or write elsewhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from storage import locations
from storage.errors import InvalidNameError, PathOutsideRootError

DATA_ROOT_ENV = "VID2VID_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("data")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def data_root(override: str | os.PathLike[str] | None = None) -> Path:
    """The data root: argument, then ``$VID2VID_DATA_ROOT``, then ./data (resolved in storage.locations)."""
    return locations.data_root(override)


def check_name(name: str, what: str) -> str:
    """Dataset, stage and clip names become path parts: allow only plain, safe names."""
    if not isinstance(name, str) or not _NAME.match(name) or name in {".", ".."}:
        raise InvalidNameError(f"invalid {what} name {name!r}: use letters, digits, '_', '-', '.' (no slashes)")
    return name


def inside(root: Path, path: str | os.PathLike[str]) -> Path:
    """Resolve ``path`` (relative paths are taken from ``root``) and refuse anything outside ``root``."""
    root_resolved = root.resolve()
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = root_resolved / candidate
    resolved = candidate.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise PathOutsideRootError(f"path {str(path)!r} resolves to {resolved}, outside the data root {root_resolved}")
    return resolved


@dataclass(frozen=True)
class DatasetLayout:
    root: Path
    dataset: str

    def __post_init__(self) -> None:
        check_name(self.dataset, "dataset")
        object.__setattr__(self, "root", Path(self.root).resolve())

    @classmethod
    def open(cls, dataset: str, root: str | os.PathLike[str] | None = None) -> "DatasetLayout":
        return cls(data_root(root), dataset)

    @property
    def base(self) -> Path:
        return inside(self.root, self.dataset)

    @property
    def manifest_path(self) -> Path:
        return self.base / "manifest.parquet"

    @property
    def quarantine_dir(self) -> Path:
        return self.base / "quarantine"

    def stage_dir(self, stage: str) -> Path:
        return self.base / "stages" / check_name(stage, "stage")

    def shard_path(self, stage: str, clip_id: str) -> Path:
        return self.stage_dir(stage) / f"{check_name(clip_id, 'clip')}.parquet"

    def quarantine_path(self, clip_id: str) -> Path:
        return self.quarantine_dir / f"{check_name(clip_id, 'clip')}.json"

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A path read from a manifest, checked to stay inside the data root."""
        return inside(self.root, path)

    def stages(self) -> list[str]:
        stages_dir = self.base / "stages"
        return sorted(p.name for p in stages_dir.iterdir() if p.is_dir()) if stages_dir.is_dir() else []
