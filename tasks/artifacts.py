"""Helpers for publishing what a run did as Prefect artifacts (keys must be lowercase-dashed)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from models.metric_display import markdown_text as md_text  # noqa: F401 - names in artifacts go through it
from storage.keys import artifact_key  # noqa: F401 - the key rule lives in a Prefect-free leaf


#: key -> id of the version this process published last: a summary links the versions its own run made
#: (a later run publishing the same key must not change where an earlier summary's links land)
PUBLISHED: dict[str, str] = {}


def publish_table(key: str, rows: Sequence[dict[str, Any]], description: str) -> str:
    PUBLISHED[key] = str(create_table_artifact(key=key, table=[dict(row) for row in rows], description=description))
    return key


def publish_markdown(key: str, markdown: str, description: str) -> str:
    PUBLISHED[key] = str(create_markdown_artifact(key=key, markdown=markdown, description=description))
    return key


def version_link(key: str) -> str:
    """The page of the version of ``key`` this process published (Prefect's new UI), else of its latest one."""
    from review.settings import artifact_url, ui_artifact

    return ui_artifact(PUBLISHED[key]) if key in PUBLISHED else artifact_url(key)


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    """An image inline in a markdown artifact: the Prefect UI renders data-URI images (ENVIRONMENT.md)."""
    return f"data:{mime};base64," + base64.b64encode(payload).decode()
