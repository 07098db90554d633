"""Streaming a clip's frames across stages, resized to a model's resolution, with bounded memory.

Synthesis and evaluation read whole clips of any length; this reads one row group at a time, so a
600-frame clip costs no more memory than a 30-frame one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from storage.errors import StorageError
from storage.layout import DatasetLayout
from storage.shards import ShardReader


def _resize(stage: str, frame: np.ndarray, size: tuple[int, int] | None, codes: bool = False) -> np.ndarray:
    """``codes``: the payload's values are ids or colour codes (its codec says so): never blended."""
    if stage == "flow":  # 2×H×W, in pixels: values scale with the image
        if size is None or (frame.shape[2], frame.shape[1]) == size:
            return frame
        scale_x, scale_y = size[0] / frame.shape[2], size[1] / frame.shape[1]
        resized = np.stack([cv2.resize(c, size, interpolation=cv2.INTER_AREA) for c in frame])
        return resized * np.array([scale_x, scale_y], np.float32)[:, None, None]
    if size is None or (frame.shape[1], frame.shape[0]) == size:
        return frame
    nearest = codes or frame.ndim == 2  # label maps (ids, masks), part indices, colour codes: never blend them
    resized = cv2.resize(frame, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
    return resized[..., None] if frame.ndim == 3 and resized.ndim == 2 else resized


def iter_clip_frames(layout: DatasetLayout, clip_id: str, stages: Sequence[str] = ("rgb", "semantic", "instance"),
                     size: tuple[int, int] | None = None, limit: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{stage: frame}`` per frame index (flow frames are 2×H×W; ``occlusion`` rides along with flow)."""
    readers = {}
    for stage in stages:
        path = layout.shard_path(stage, clip_id)
        if not path.is_file():
            raise StorageError(f"clip {clip_id!r} of {layout.dataset!r} has no {stage!r} shard at {path}")
        readers[stage] = ShardReader(path)
    n = min(len(r) for r in readers.values())
    if limit is not None:
        n = min(n, limit)
    step = max(r.meta.row_group_size for r in readers.values())
    for start in range(0, n, step):
        stop = min(n, start + step)
        chunks = {stage: reader.read(start, stop) for stage, reader in readers.items()}
        for i in range(stop - start):
            frame: dict[str, np.ndarray] = {}
            for stage, rows in chunks.items():
                frame[stage] = _resize(stage, rows[i]["payload"], size, readers[stage].codec().labels)
                if stage == "flow" and "occlusion" in rows[i]:
                    frame["occlusion"] = _resize("occlusion", rows[i]["occlusion"], size)
            yield frame
