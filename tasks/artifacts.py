"""Helpers for publishing what a run did as Prefect artifacts (keys must be lowercase-dashed)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from storage.keys import artifact_key  # noqa: F401 - the key rule lives in a Prefect-free leaf


def publish_table(key: str, rows: Sequence[dict[str, Any]], description: str) -> str:
    create_table_artifact(key=key, table=[dict(row) for row in rows], description=description)
    return key


def publish_markdown(key: str, markdown: str, description: str) -> str:
    create_markdown_artifact(key=key, markdown=markdown, description=description)
    return key


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    """An image inline in a markdown artifact: the Prefect UI renders data-URI images (ENVIRONMENT.md)."""
    return f"data:{mime};base64," + base64.b64encode(payload).decode()
