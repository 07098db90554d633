"""The study results and the paper's table as Prefect artifacts (one of each per dataset), kept current as
votes arrive: each is updated in place (``PATCH /artifacts/{id}`` of the key's latest version, Prefect's
current client API) at most once per ``delay`` seconds per dataset, instead of a new version per vote.
Prefect is imported only here, only when publishing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from review.settings import review_page
from storage.keys import artifact_key
from review.study import StudyResult

log = logging.getLogger("vid2vid.review")


def study_artifact_key(dataset: str) -> str:
    return artifact_key("study", dataset)


def paper_artifact_key(dataset: str) -> str:
    return artifact_key("paper", dataset)


@dataclass(frozen=True)
class Artifact:
    key: str
    type: str  # "table" | "markdown"
    data: str  # what Prefect stores: JSON rows for a table, the text for markdown
    description: str


def study_artifact(dataset: str, results: list[StudyResult]) -> Artifact:
    rows = [r.row() for r in results]
    votes = sum(r.votes for r in results)
    return Artifact(study_artifact_key(dataset), "table", json.dumps(rows), (
        f"Human preference studies on `{dataset}`: share of votes for A / for B (\"which video looks more "
        f"real?\"), the 95 % Wilson interval of A's share, and the number of counted votes ({votes} in all). "
        f"Raters who failed an attention check are not counted. The paper's table: {review_page('d', dataset, 'table')}"))


def upsert(artifact: Artifact) -> str:
    """Update the key's latest version in place, or create the first one; returns the artifact id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(artifact_filter=ArtifactCollectionFilter(
            key=ArtifactCollectionFilterKey(any_=[artifact.key])), limit=1)
        if latest and latest[0].type == artifact.type:
            client.update_artifact(latest[0].latest_id, ArtifactUpdate(data=artifact.data,
                                                                       description=artifact.description))
            return str(latest[0].latest_id)
        created = client.create_artifact(ArtifactCreate(key=artifact.key, type=artifact.type, data=artifact.data,
                                                        description=artifact.description))
        return str(created.id)


def publish_results(dataset: str, results: list[StudyResult]) -> str:
    """Publish the study table; returns its key."""
    artifact = study_artifact(dataset, results)
    upsert(artifact)
    return artifact.key


class Publisher:
    """Coalesces votes: at most one publish per ``delay`` seconds per dataset, always one after the last vote.

    ``compose(dataset)`` gives the artifacts to publish (read when the publish happens, so it shows every
    vote so far). Publishes only when a Prefect server is configured (``PREFECT_API_URL``): a web app must
    not start Prefect's temporary embedded server."""

    def __init__(self, compose: Callable[[str], Awaitable[list[Artifact]]], delay: float = 5.0) -> None:
        self.compose, self.delay = compose, delay
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
                for artifact in await self.compose(dataset):
                    await asyncio.to_thread(upsert, artifact)
        except Exception as exc:  # noqa: BLE001 - a Prefect outage must not lose or fail votes
            log.warning("could not publish the study artifacts for %s: %s", dataset, exc)

    async def drain(self) -> None:
        """Wait for the publishes scheduled so far (on shutdown)."""
        pending = list(self._pending.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def paper_artifact(table, review_link: str) -> Artifact:  # noqa: ANN001 - review.paper.PaperTable
    from review.paper import markdown

    return Artifact(paper_artifact_key(table.dataset), "markdown", markdown(table, review_link),
                    f"the paper's table for {table.dataset}: methods × metrics and human preference, with sources")
