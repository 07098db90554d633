"""Helpers for publishing what a run did as Prefect artifacts (keys must be lowercase-dashed)."""

from __future__ import annotations

import base64
import re
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


#: an artifact travels inside Prefect's artifact events, which the server drops above 1.5 MB
#: (PREFECT_SERVER_EVENTS_MAXIMUM_SIZE_BYTES: "Refusing to publish event of size ..."); ours stay below this
MARKDOWN_BUDGET = 1_000_000
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif);base64,([A-Za-z0-9+/=]+)")


def fit_markdown(markdown: str, budget: int = MARKDOWN_BUDGET) -> str:
    """``markdown`` with its inline pictures re-encoded (JPEG, then smaller) until the whole fits ``budget``:
    every picture stays in place and visible; the full-size frames stay in the run's files and the review
    app. Text is never cut. Unchanged when it fits already."""
    if len(markdown) <= budget:
        return markdown
    images = list(_DATA_IMAGE.finditer(markdown))
    if not images:
        return markdown
    text = len(markdown) - sum(len(m.group(0)) for m in images)
    share = max(1_000, (budget - text) // len(images))  # bytes of data URI each picture may take
    replaced = {m.group(0): _shrink(base64.b64decode(m.group(2)), share) for m in images}
    return _DATA_IMAGE.sub(lambda m: replaced[m.group(0)], markdown)


def _shrink(payload: bytes, budget: int) -> str:
    """A JPEG data URI of the picture within ``budget`` characters: quality first, then size."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(payload))
    if getattr(image, "n_frames", 1) > 1:  # an animated preview stays animated: smaller frames
        return _shrink_animation(image, budget)
    image = image.convert("RGB")
    scale, quality, uri = 1.0, 85, ""
    for _ in range(12):
        size = (max(8, int(image.width * scale)), max(8, int(image.height * scale)))
        buffer = io.BytesIO()
        (image if scale == 1.0 else image.resize(size, Image.LANCZOS)).save(buffer, "JPEG", quality=quality)
        uri = data_uri(buffer.getvalue(), "image/jpeg")
        if len(uri) <= budget:
            break
        if quality > 60:
            quality -= 15
        else:
            scale *= 0.75
    return uri


def _shrink_animation(image, budget: int) -> str:  # noqa: ANN001 - a PIL image with several frames
    import io

    from PIL import Image, ImageSequence

    frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(image)]
    duration = image.info.get("duration", 100)
    scale, uri = 1.0, ""
    for _ in range(12):
        scale *= 0.75
        size = (max(8, int(frames[0].width * scale)), max(8, int(frames[0].height * scale)))
        small = [frame.resize(size, Image.LANCZOS) for frame in frames]
        buffer = io.BytesIO()
        small[0].save(buffer, "GIF", save_all=True, append_images=small[1:], duration=duration, loop=0)
        uri = data_uri(buffer.getvalue(), "image/gif")
        if len(uri) <= budget:
            break
    return uri


def publish_markdown(key: str, markdown: str, description: str) -> str:
    PUBLISHED[key] = str(create_markdown_artifact(key=key, markdown=fit_markdown(markdown), description=description))
    return key


def version_link(key: str) -> str:
    """The page of the version of ``key`` this process published (Prefect's new UI), else of its latest one."""
    from storage.links import artifact_url, ui_artifact

    return ui_artifact(PUBLISHED[key]) if key in PUBLISHED else artifact_url(key)


def data_uri(payload: bytes, mime: str = "image/png") -> str:
    """An image inline in a markdown artifact: the Prefect UI renders data-URI images (ENVIRONMENT.md)."""
    return f"data:{mime};base64," + base64.b64encode(payload).decode()
