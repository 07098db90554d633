"""Artifacts fit Prefect's event size (issue 24: "Refusing to publish event of size 1627616" after the
evaluations): pictures are re-encoded until the markdown fits, none is dropped, text is untouched."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
from PIL import Image

from tasks.artifacts import MARKDOWN_BUDGET, _DATA_IMAGE, data_uri, fit_markdown


def _noise_png(seed: int, size: tuple[int, int] = (640, 360)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _noise_gif(seed: int, frames: int = 6) -> bytes:
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) for _ in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buffer.getvalue()


def test_a_markdown_over_the_event_limit_keeps_every_picture_and_fits():
    from prefect.settings import PREFECT_SERVER_EVENTS_MAXIMUM_SIZE_BYTES

    text = ["# evaluation of street", "| run | FID |", "|---|---|", "| vid2vid | 14.58 |"]
    pictures = [f"![grid {k}]({data_uri(_noise_png(k))})" for k in range(3)]
    markdown = "\n".join([*text, *pictures, f"![preview]({data_uri(_noise_gif(9), 'image/gif')})", "end."])
    assert len(markdown) > PREFECT_SERVER_EVENTS_MAXIMUM_SIZE_BYTES.value()  # what Prefect refused to publish
    fitted = fit_markdown(markdown)
    assert len(fitted) <= MARKDOWN_BUDGET < PREFECT_SERVER_EVENTS_MAXIMUM_SIZE_BYTES.value()
    assert _DATA_IMAGE.sub("", fitted) != fitted and all(line in fitted for line in text) and fitted.endswith("end.")
    found = list(_DATA_IMAGE.finditer(fitted))
    assert [m.group(1) for m in found] == ["jpeg", "jpeg", "jpeg", "gif"]
    assert re.findall(r"!\[([^\]]*)\]", fitted) == ["grid 0", "grid 1", "grid 2", "preview"]
    for match in found:
        image = Image.open(io.BytesIO(base64.b64decode(match.group(2))))
        assert image.width >= 8 and image.height >= 8
    assert getattr(Image.open(io.BytesIO(base64.b64decode(found[-1].group(2)))), "n_frames", 1) == 6  # still animated


def test_a_markdown_that_fits_is_left_alone():
    small = f"# ok\n![p]({data_uri(_noise_png(1, (32, 16)))})"
    assert fit_markdown(small) is small
