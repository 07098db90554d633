"""Ingest one source clip into an rgb shard: decode, apply the frame policy, write atomically.

Bad input raises nothing here: it comes back as a quarantined ``ClipRecord`` with the reason, so one
bad clip never stops the others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from storage.errors import BadInputError, ShardError
from storage.fingerprint import sha256_file
from storage.layout import DatasetLayout
from storage.manifest import ClipRecord, clear_quarantine, quarantine
from storage.stages import write_stage
from storage.video import FramePolicy, VideoSource, decode, probe

INGEST_CODE_VERSION = "ingest/1"


class IngestConfig(BaseModel):
    policy: FramePolicy = Field(default_factory=FramePolicy)
    codec: Literal["png_rgb", "jpeg_rgb"] = "png_rgb"
    val_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    min_frames: int = Field(default=2, ge=1)


def split_for(clip_id: str, val_fraction: float) -> str:
    """Deterministic train/val split from the clip id's hash: the same clip always lands the same side."""
    bucket = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:4], "big") / 2**32
    return "val" if bucket < val_fraction else "train"


def clip_ids(sources: Sequence[VideoSource]) -> list[str]:
    """Readable, path-safe, unique clip ids from source names (a short hash settles collisions)."""
    ids: list[str] = []
    for source in sources:
        base = re.sub(r"[^A-Za-z0-9_.\-]+", "_", source.name).strip("._-")[:80] or "clip"
        ids.append(base)
    seen: dict[str, int] = {}
    for cid in ids:
        seen[cid] = seen.get(cid, 0) + 1
    return [cid if seen[cid] == 1 else f"{cid}-{hashlib.sha256(str(s.files()[0]).encode()).hexdigest()[:8]}"
            for cid, s in zip(ids, sources)]


def source_sha256(source: VideoSource) -> str:
    if not source.is_sequence:
        return sha256_file(source.path)
    digest = hashlib.sha256()
    for frame in source.frames:
        digest.update(frame.name.encode() + b"\0" + bytes.fromhex(sha256_file(frame)))
    return digest.hexdigest()


def ingest_clip(layout: DatasetLayout, source: VideoSource, clip_id: str, config: IngestConfig) -> ClipRecord:
    """Decode ``source`` into ``stages/rgb/<clip_id>.parquet``; a bad source yields a quarantined record."""
    record = ClipRecord(clip_id=clip_id, source=str(source.path), split=split_for(clip_id, config.val_fraction))
    try:
        sha = source_sha256(source)
        info = probe(source, config.policy)
        result = write_stage(
            layout, "rgb", clip_id, backend="ingest", config=config.model_dump(mode="json"),
            code_version=INGEST_CODE_VERSION, upstream_ids=[sha], codecs={"payload": config.codec},
            frames=lambda: ({"payload": frame} for frame in decode(source, config.policy)),
            extra={"source": str(source.path), "fps": info.fps},
        )
        if result.n_frames < config.min_frames:
            layout.shard_path("rgb", clip_id).unlink(missing_ok=True)
            raise BadInputError(str(source.path), f"only {result.n_frames} frame(s); at least {config.min_frames} needed")
        size = config.policy.size or (info.width, info.height)
        record = record.model_copy(update=dict(n_frames=result.n_frames, fps=info.fps, width=size[0], height=size[1],
                                               source_sha256=sha, status="ok"))
        clear_quarantine(layout, clip_id)
    except (BadInputError, ShardError, OSError) as exc:
        record = record.model_copy(update=dict(status="quarantined", error=str(exc)))
        layout.shard_path("rgb", clip_id).unlink(missing_ok=True)
        quarantine(layout, record)
    return record
