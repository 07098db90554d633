"""Prefect artifact keys as plain strings (lowercase-dashed, at most 100 characters).

A leaf with no Prefect import: the review app links to artifacts by key without loading Prefect, and the
publishing tasks (``tasks/artifacts.py``) make the same keys.
"""

from __future__ import annotations

import re


def artifact_key(*parts: str) -> str:
    key = "-".join(re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-") for part in parts if part)
    return key[:100] or "vid2vid"
