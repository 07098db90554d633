"""Which clips an evaluation scores, and which real clips stand as each FID's floor (a pure rule over the
manifest; no torch).

The scored clips are the split's ok clips, or every ok clip when the split has none; the floor is as many
other (training) clips' real frames, so both sides of a distance rest on similar sample counts.
"""

from __future__ import annotations

from storage.layout import DatasetLayout
from storage.manifest import read_manifest


def evaluation_clips(layout: DatasetLayout, split: str) -> tuple[list[str], list[str]]:
    """(clips to score, reference clips); a dataset with no ok clip is refused."""
    records = [r for r in read_manifest(layout) if r.status == "ok"]
    clips = [r.clip_id for r in records if r.split == split] or [r.clip_id for r in records]
    reference_clips = [r.clip_id for r in records if r.clip_id not in clips][: len(clips)]
    if not clips:
        raise FileNotFoundError(f"dataset {layout.dataset!r} has no usable clips to evaluate")
    return clips, reference_clips
