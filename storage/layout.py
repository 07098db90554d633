"""Where a dataset's files live under the data root (docs/DESIGN.md, data contract).

Every path handed out here is resolved (symlinks included) and checked to stay inside the data root, so a
hostile or broken manifest, or a stage folder that is a symlink, can never make the pipeline read or
write elsewhere. Outputs users name (``--out``) are checked never to land on a dataset's managed files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from storage import locations
from storage.errors import InvalidNameError, ManagedPathError, PathOutsideRootError
from storage.locks import DATASET_LOCK, LOCK_DIR, shard_stripe

DATA_ROOT_ENV = "VID2VID_DATA_ROOT"
DEFAULT_DATA_ROOT = Path("data")
#: what the pipeline owns inside ``<root>/<dataset>/``: no user output may be written there
MANAGED_ENTRIES = ("manifest.parquet", "stages", "quarantine", LOCK_DIR)
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
        return inside(self.root, self.base / "manifest.parquet")

    @property
    def quarantine_dir(self) -> Path:
        return inside(self.root, self.base / "quarantine")

    def stage_dir(self, stage: str) -> Path:
        return inside(self.root, self.base / "stages" / check_name(stage, "stage"))

    def shard_path(self, stage: str, clip_id: str) -> Path:
        return inside(self.root, self.stage_dir(stage) / f"{check_name(clip_id, 'clip')}.parquet")

    def quarantine_path(self, clip_id: str) -> Path:
        return inside(self.root, self.quarantine_dir / f"{check_name(clip_id, 'clip')}.json")

    def rejection_path(self, clip_id: str) -> Path:
        """Why a new source named like an existing good clip was not taken (the good clip stays)."""
        return inside(self.root, self.quarantine_dir / f"{check_name(clip_id, 'clip')}.rejected.json")

    @property
    def lock_path(self) -> Path:
        return inside(self.root, self.base / LOCK_DIR / DATASET_LOCK)

    def shard_lock_path(self, stage: str, clip_id: str) -> Path:
        return inside(self.root, self.base / LOCK_DIR / shard_stripe(check_name(stage, "stage"), check_name(clip_id, "clip")))

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """A path read from a manifest, checked to stay inside the data root."""
        return inside(self.root, path)

    def stages(self) -> list[str]:
        stages_dir = inside(self.root, self.base / "stages")
        return sorted(p.name for p in stages_dir.iterdir() if p.is_dir()) if stages_dir.is_dir() else []

    def check_tree(self) -> None:
        """Resolve every managed path that exists (stage folders included): raises if any leaves the root."""
        for entry in MANAGED_ENTRIES:
            inside(self.root, self.base / entry)
        for stage in self.stages():
            self.stage_dir(stage)


def check_output_path(out: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve a user-named output file and refuse one that would land on a dataset's managed files.

    Refused: anything that resolves into ``<root>/<dataset>/{manifest.parquet, stages/, quarantine/,
    .locks/}``, and any existing ``.parquet`` file under the data root. Other places are fine.
    """
    resolved = Path(out).expanduser().resolve()
    root_resolved = data_root(root).resolve()
    if resolved == root_resolved or root_resolved not in resolved.parents:
        return resolved
    parts = resolved.relative_to(root_resolved).parts
    if len(parts) >= 2 and parts[1] in MANAGED_ENTRIES:
        raise ManagedPathError(
            f"refusing to write {out!r}: it resolves to {resolved}, inside dataset {parts[0]!r}'s managed "
            f"files ({parts[1]}); choose an output outside {root_resolved / parts[0] / parts[1]}")
    if resolved.suffix == ".parquet" and resolved.exists():
        raise ManagedPathError(f"refusing to write {out!r}: {resolved} is an existing Parquet file under "
                                   f"the data root {root_resolved}")
    return resolved
