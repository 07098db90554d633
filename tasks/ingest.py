"""Prefect tasks around storage's ingest: one task per clip, so the UI shows each clip's fate."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage.ingest import IngestConfig, ingest_clip
from storage.layout import DatasetLayout
from storage.manifest import ClipRecord
from storage.synthetic import write_synthetic_clip
from storage.video import VideoSource

# Our own fingerprints decide what is skipped; Prefect's input caching stays out of the way.
# Bad input never raises (it is quarantined), so a retry only ever covers a transient fault.


@task(name="ingest-clip", task_run_name="ingest {clip_id}", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ingest_clip_task(layout: DatasetLayout, source: VideoSource, clip_id: str, config: IngestConfig) -> ClipRecord:
    return ingest_clip(layout, source, clip_id, config)


@task(name="synth-clip", task_run_name="synth {clip_id}", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE)
def synth_clip_task(layout: DatasetLayout, clip_id: str, seed: int, width: int, height: int, n_frames: int,
                    split: str) -> ClipRecord:
    return write_synthetic_clip(layout, clip_id, seed, width, height, n_frames, split)
