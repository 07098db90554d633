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

from storage.layout import check_name, inside

LATEST = "latest"
MEDIA_SUFFIXES = {".mp4", ".png", ".gif", ".webm"}


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

    def run(self, run: str) -> RunEntry:
        if run not in self.runs:
            raise NotFound(f"run {run!r} is not in evaluation {self.name!r} of {self.dataset!r}")
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
            except ValueError as exc:
                raise NotFound(str(exc)) from None
        path = folder / "comparison.json"
        if not path.is_file():
            raise NotFound(f"no evaluation {name!r} for dataset {dataset!r}")
        data = json.loads(path.read_text())
        runs: dict[str, RunEntry] = {}
        for item in data.get("evaluations", []):
            clips = {c["clip_id"]: ClipVideos(c["clip_id"], self._relative(c.get("video")),
                                              self._relative(c.get("side_by_side")), int(c.get("frames", 0)))
                     for c in item.get("clips", [])}
            values = {k: (f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in item.get("values", {}).items()}
            runs[item["run"]] = RunEntry(item["run"], item.get("variant", ""), item.get("config", ""), values, clips)
        return Evaluation(dataset, name, folder, list(data.get("metrics", [])), list(data.get("table", [])), runs)

    def media(self, relative: str) -> Path:
        """A servable file under the runs root, or NotFound (never a path outside it)."""
        try:
            path = inside(self.root, relative)
        except ValueError as exc:
            raise NotFound(str(exc)) from None
        if path.suffix.lower() not in MEDIA_SUFFIXES or not path.is_file():
            raise NotFound(f"no media file {relative!r}")
        return path

    def _dataset_dir(self, dataset: str) -> Path:
        try:
            folder = inside(self.evaluations_dir, check_name(dataset, "dataset"))
        except ValueError as exc:
            raise NotFound(str(exc)) from None
        if not folder.is_dir():
            raise NotFound(f"no evaluations for dataset {dataset!r}")
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
