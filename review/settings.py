"""Where the review app is, where its votes are kept, and where the Prefect UI is: one setting each
(the addresses and links live in the leaf ``storage.links``)."""

from __future__ import annotations

from pathlib import Path

from storage.database import DB_URL_ENV, database_url as storage_database_url  # noqa: F401 - re-exported
from storage.links import (  # noqa: F401 - re-exported
    review_url,
    prefect_ui_url,
    prefect_api_url,
    artifact_url,
    ui_artifact,
    ui_artifact_versions,
    review_page,
    REVIEW_URL_ENV,
    DEFAULT_REVIEW_URL,
    PREFECT_UI_ENV,
    DEFAULT_PREFECT_UI_URL,
)


def database_url(runs_root: Path, override: str | None = None) -> str:
    """The votes database (the model registry's too): argument, then $VID2VID_REVIEW_DB_URL, then SQLite at
    <runs_root>/review/review.db; one rule, ``storage.database.database_url``.

    URLs use SQLAlchemy's async drivers that ship with Prefect: ``sqlite+aiosqlite`` and ``postgresql+asyncpg``.
    """
    return storage_database_url(runs_root, override)
