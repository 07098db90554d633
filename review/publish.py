"""The study results as a Prefect table artifact (one per dataset, a row per study: ablations side by side),
republished as votes arrive. Prefect is imported only here, only when publishing."""

from __future__ import annotations

import asyncio
import logging
import os

from review.settings import review_page
from storage.keys import artifact_key
from review.study import StudyResult

log = logging.getLogger("vid2vid.review")


def study_artifact_key(dataset: str) -> str:
    return artifact_key("study", dataset)


def publish_results(dataset: str, results: list[StudyResult]) -> str:
    """Publish the table; returns its key."""
    from prefect.artifacts import create_table_artifact

    rows = [r.row() for r in results]
    votes = sum(r.votes for r in results)
    key = study_artifact_key(dataset)
    create_table_artifact(key=key, table=rows, description=(
        f"Human preference studies on `{dataset}`: share of votes for A / for B (\"which video looks more "
        f"real?\"), the 95 % Wilson interval of A's share, and the number of counted votes ({votes} in all). "
        f"Raters who failed an attention check are not counted. Live results: {review_page('d', dataset)}"))
    return key


class Publisher:
    """Coalesces votes: at most one publish per ``delay`` seconds per dataset, always one after the last vote.

    Publishes only when a Prefect server is configured (``PREFECT_API_URL``): a web app must not start
    Prefect's temporary embedded server."""

    def __init__(self, tally, delay: float = 1.0) -> None:  # noqa: ANN001 - async (dataset) -> results
        self.tally, self.delay = tally, delay
        self.enabled = bool(os.environ.get("PREFECT_API_URL"))
        self._pending: dict[str, asyncio.Task] = {}
        self._lock = asyncio.Lock()  # one publish at a time, so a later tally is never overwritten by an earlier one

    def notify(self, dataset: str) -> None:
        if self.enabled and dataset not in self._pending:
            self._pending[dataset] = asyncio.create_task(self._publish_later(dataset))

    async def _publish_later(self, dataset: str) -> None:
        await asyncio.sleep(self.delay)
        self._pending.pop(dataset, None)  # a vote from now on schedules the next publish
        try:
            async with self._lock:
                await asyncio.to_thread(publish_results, dataset, await self.tally(dataset))
        except Exception as exc:  # noqa: BLE001 - a Prefect outage must not lose or fail votes
            log.warning("could not publish the study artifact for %s: %s", dataset, exc)

    async def drain(self) -> None:
        """Wait for the publishes scheduled so far (on shutdown)."""
        pending = list(self._pending.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
