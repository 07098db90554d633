"""Where the review app and the Prefect UI are, and the links into them: a leaf, so publishing tasks and the
review app make the same links without importing each other."""

from __future__ import annotations

import os

REVIEW_URL_ENV = "VID2VID_REVIEW_URL"
DEFAULT_REVIEW_URL = "http://127.0.0.1:4300"  # what `make ui` serves
PREFECT_UI_ENV = "VID2VID_PREFECT_UI_URL"
DEFAULT_PREFECT_UI_URL = "http://127.0.0.1:4200"  # what `make ui` serves


def review_url() -> str:
    """The review app's public address, for links from the Prefect artifacts."""
    return (os.environ.get(REVIEW_URL_ENV) or DEFAULT_REVIEW_URL).rstrip("/")


def prefect_ui_url() -> str:
    """The Prefect UI's address, for links from the review app to the artifacts."""
    return (os.environ.get(PREFECT_UI_ENV) or DEFAULT_PREFECT_UI_URL).rstrip("/")


def prefect_api_url() -> str:
    """Where the review app asks Prefect which version of an artifact is the latest."""
    return (os.environ.get("PREFECT_API_URL") or prefect_ui_url() + "/api").rstrip("/")


def artifact_url(key: str) -> str:
    """A link that opens the latest version of an artifact key, its table or text, in the UI that Prefect's
    ``/`` serves: the review app looks the version up when the link is followed (``/prefect/artifact/<key>``)."""
    return review_page("prefect", "artifact", key)


def ui_artifact(artifact_id: str) -> str:
    """One artifact version's page in Prefect's new UI (what ``/`` redirects to in Prefect 3.9)."""
    return f"{prefect_ui_url()}/v2/artifacts/artifact/{artifact_id}"


def ui_artifact_versions(key: str) -> str:
    return f"{prefect_ui_url()}/v2/artifacts/key/{key}"


def review_page(*parts: str) -> str:
    """A review-app address for links in artifacts, e.g. review_page("d", dataset)."""
    return "/".join([review_url(), *parts])
