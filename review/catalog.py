"""What the evaluations left under the runs root, as the review pages need it.

The evaluation flow writes ``<runs_root>/evaluations/<dataset>/comparison.json`` (its table and, per run,
the synthesized and side-by-side mp4 of every clip). An evaluation written to a sub-folder of that
(``out_dir``) is listed by its folder name; the default folder is ``latest``. Every path that comes from a
URL or from a JSON file is resolved inside the runs root or refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from models.metric_display import cell
from storage.layout import check_name, inside

LATEST = "latest"
MEDIA_SUFFIXES = {".mp4", ".png", ".gif", ".webm"}


def _short(text: str, limit: int = 80) -> str:
    """A name from a URL as it may appear in a message: never long enough to flood a page."""
    return text if len(text) <= limit else text[:limit] + "…"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name longer than the file system allows
        return False


class NotFound(FileNotFoundError):
    """A dataset, evaluation, run, clip or file the URL names does not exist (or may not be served)."""


@dataclass(frozen=True)
class ClipVideos:
    clip_id: str
    video: str | None  # path relative to the runs root
    side_by_side: str | None
    frames: int


@dataclass(frozen=True)
class RunEntry:
    run: str
    variant: str
    config: str
    values: dict[str, str]
    clips: dict[str, ClipVideos] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    dataset: str
    name: str
    folder: Path
    metrics: list[str]
    table: list[dict[str, str]]
    runs: dict[str, RunEntry]
    data: dict = field(default_factory=dict)  # comparison.json as written (raw values, references, notes)

    def run(self, run: str) -> RunEntry:
        if run not in self.runs:
            raise NotFound(f"run {_short(run)!r} is not in evaluation {self.name!r} of {self.dataset!r}")
        return self.runs[run]

    @property
    def clip_ids(self) -> list[str]:
        return sorted({c for r in self.runs.values() for c in r.clips})


class Catalog:
    """Reads evaluations lazily, per request: a new evaluation shows without restarting the app."""

    def __init__(self, runs_root: Path) -> None:
        self.root = Path(runs_root).resolve()

    @property
    def evaluations_dir(self) -> Path:
        return self.root / "evaluations"

    def datasets(self) -> list[str]:
        if not self.evaluations_dir.is_dir():
            return []
        return sorted(p.name for p in self.evaluations_dir.iterdir() if p.is_dir() and self._names(p))

    def evaluations(self, dataset: str) -> list[str]:
        return self._names(self._dataset_dir(dataset))

    def evaluation(self, dataset: str, name: str) -> Evaluation:
        folder = self._dataset_dir(dataset)
        if name != LATEST:
            try:
                folder = inside(folder, check_name(name, "evaluation"))
            except (ValueError, OSError):
                raise NotFound(f"no evaluation {_short(name)!r} for dataset {_short(dataset)!r}") from None
        path = folder / "comparison.json"
        if not _is_file(path):
            raise NotFound(f"no evaluation {_short(name)!r} for dataset {_short(dataset)!r}")
        data = json.loads(path.read_text())
        runs: dict[str, RunEntry] = {}
        for item in data.get("evaluations", []):
            clips = {c["clip_id"]: ClipVideos(c["clip_id"], self._relative(c.get("video")),
                                              self._relative(c.get("side_by_side")), int(c.get("frames", 0)))
                     for c in item.get("clips", [])}
            details = item.get("details", {})  # rounded as in the comparison table (models.metric_display)
            values = {k: cell(k, v, details.get(k)) for k, v in item.get("values", {}).items()}
            runs[item["run"]] = RunEntry(item["run"], item.get("variant", ""), item.get("config", ""), values, clips)
        return Evaluation(dataset, name, folder, list(data.get("metrics", [])), list(data.get("table", [])), runs, data)

    def media(self, relative: str) -> Path:
        """A servable file under the runs root, or NotFound (never a path outside it). The message names
        no server path: not the runs root, not where a link points."""
        try:
            path = inside(self.root, relative)
            servable = path.suffix.lower() in MEDIA_SUFFIXES and path.is_file()
        except (ValueError, OSError):  # outside the root, a name too long for the file system, ...
            servable = False
        if not servable:
            raise NotFound(f"no media file {_short(relative)!r}")
        return path

    def _dataset_dir(self, dataset: str) -> Path:
        try:
            folder = inside(self.evaluations_dir, check_name(dataset, "dataset"))
            found = folder.is_dir()
        except (ValueError, OSError):
            found = False
        if not found:
            raise NotFound(f"no evaluations for dataset {_short(dataset)!r}")
        return folder

    @staticmethod
    def _names(folder: Path) -> list[str]:
        names = [LATEST] if (folder / "comparison.json").is_file() else []
        if folder.is_dir():
            names += sorted(p.name for p in folder.iterdir() if (p / "comparison.json").is_file())
        return names

    def _relative(self, path: str | None) -> str | None:
        """A video path from comparison.json as a path under the runs root; None if it lies elsewhere."""
        if not path:
            return None
        resolved = Path(path).resolve()
        return str(resolved.relative_to(self.root)) if resolved.is_relative_to(self.root) else None
