"""What one preprocessing run covers, decided before any task or cluster starts: its clips × stages.

A pure rule over the manifest and the shards' fingerprints (no Prefect): the preprocess flow
(flows/preprocess.py) submits one task per job of the plan, and asks it first whether every shard is current
already (then no Dask cluster is started or joined).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.preprocess.clip import RunSettings, would_skip
from models.preprocess.registry import BackendSettings
from storage.layout import DatasetLayout
from storage.manifest import ClipRecord, read_manifest


@dataclass(frozen=True)
class Job:
    """One (stage, clip) of a run: what ``preprocess_clip`` is given."""

    stage: str
    clip_id: str
    settings: BackendSettings
    size: tuple[int, int] | None  # (width, height) the manifest expects, when it knows


@dataclass(frozen=True)
class PreprocessPlan:
    layout: DatasetLayout
    records: dict[str, ClipRecord]  # the ok clips this run covers
    settings: dict[str, BackendSettings]  # stage -> its backend, in the run's stage order
    run: RunSettings

    @property
    def stages(self) -> list[str]:
        return list(self.settings)

    @property
    def backends(self) -> dict[str, str]:
        return {stage: settings.backend for stage, settings in self.settings.items()}

    @property
    def jobs(self) -> list[Job]:
        """Stage by stage, each stage's clips in id order."""
        return [Job(stage, clip_id, settings, frame_size(record)) for stage, settings in self.settings.items()
                for clip_id, record in sorted(self.records.items())]

    def all_current(self) -> bool:
        """Whether every job would only find its shard current (nothing to compute or validate)."""
        return all(would_skip(self.layout, job.clip_id, job.stage, job.settings, self.run, job.size)
                   for job in self.jobs)


def frame_size(record: ClipRecord) -> tuple[int, int] | None:
    return (record.width, record.height) if record.height and record.width else None


def ok_clips(layout: DatasetLayout, clips: list[str] | None) -> dict[str, ClipRecord]:
    """The dataset's ok clips a run covers (``clips``, or all of them); a missing manifest or an unknown clip
    is refused."""
    manifest = read_manifest(layout)
    if not manifest:
        raise FileNotFoundError(f"no manifest for dataset {layout.dataset!r} at {layout.manifest_path}: ingest first")
    records = {r.clip_id: r for r in manifest if r.status == "ok"}
    if clips is not None:
        unknown = sorted(set(clips) - set(records))
        if unknown:
            raise ValueError(f"clips {unknown} are not ok clips of {layout.dataset!r}")
        records = {c: records[c] for c in clips}
    return records


def plan_run(layout: DatasetLayout, clips: list[str] | None, settings: dict[str, BackendSettings],
             run: RunSettings) -> PreprocessPlan:
    """The run over ``clips`` (default: every ok clip) and ``settings``' stages; refuses as ``ok_clips``."""
    return PreprocessPlan(layout, ok_clips(layout, clips), dict(settings), run)
