"""The preprocess flow's summary artifact: one table row per stage (``models/preprocess/summary.py``'s rows)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.preprocess.summary import StageSummary, summary_rows
from storage.layout import DatasetLayout
from tasks.artifacts import artifact_key, publish_table


@task(name="publish-preprocess-summary", cache_policy=NO_CACHE)
def publish_preprocess_task(layout: DatasetLayout, stages: dict[str, StageSummary], done: int, quarantined: int,
                            failed: int, wall: float) -> str:
    """Publishes the run's table (``done`` tasks, ``quarantined`` clips, ``failed`` tasks, ``wall`` seconds);
    returns its key."""
    return publish_table(artifact_key("preprocess", layout.dataset), summary_rows(stages),
                         f"**preprocess** `{layout.base}`: {done} task(s) done, {quarantined} clip(s) "
                         f"quarantined, {failed} failed, {wall:.1f} s wall")
