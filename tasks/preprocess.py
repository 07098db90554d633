"""One Prefect task per (clip, stage): thin glue around ``models.preprocess.clip.preprocess_clip``.

Retries only what a retry can fix (see that module's failure policy): not setup problems, not bad input.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.preprocess.clip import BAD_INPUT, SETUP, RunSettings, StageOutcome, limit_threads, preprocess_clip
from models.preprocess.registry import BackendSettings
from storage.layout import DatasetLayout


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what a retry can fix: not setup problems, not bad input, not programming errors."""
    try:
        state.result()
    except SETUP + BAD_INPUT + (ValueError, TypeError, KeyError, AttributeError, AssertionError):
        return False
    except Exception:  # noqa: BLE001 - anything else (I/O, killed worker) may be transient
        return True
    return False


@task(name="preprocess-clip", task_run_name="{stage} {clip_id}", retries=2, retry_delay_seconds=2,
      retry_condition_fn=_transient, cache_policy=NO_CACHE)
def preprocess_clip_task(layout: DatasetLayout, clip_id: str, stage: str, settings: BackendSettings,
                         run: RunSettings, expected_size: tuple[int, int] | None = None) -> StageOutcome:
    return preprocess_clip(layout, clip_id, stage, settings, run, expected_size,
                           before_compute=lambda: limit_threads(run.threads))
