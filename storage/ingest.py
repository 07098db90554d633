"""Ingest one source clip into an rgb shard: decode, apply the frame policy, write atomically.

Bad input raises nothing here: it comes back as a quarantined ``ClipRecord`` with the reason, so one
bad clip never stops the others. A good clip is never destroyed: a new source named like an existing
clip is a *rejected* record (the clip and its stage shards stay) unless ``replace`` is set, and even then
the old clip stays until the new one is fully written; only then are its other stage shards invalidated.
"""

from __future__ import annotations

import errno
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from storage.errors import BadInputError, ShardError, StorageEnvironmentError, environment_cause
from storage.fingerprint import sha256_file
from storage.layout import DatasetLayout
from storage.locks import file_lock
from storage.manifest import ClipRecord, clear_quarantine, quarantine, read_manifest
from storage.shards import read_meta
from storage.stages import invalidate_stages, write_stage
from storage.video import FramePolicy, VideoSource, decode, probe

INGEST_CODE_VERSION = "ingest/1"


class IngestConfig(BaseModel):
    policy: FramePolicy = Field(default_factory=FramePolicy, description="frame rate, size and length of the shards")
    codec: Literal["png_rgb", "jpeg_rgb"] = Field(default="png_rgb", description="how frames are stored: lossless PNG or JPEG")
    val_fraction: float = Field(default=0.2, ge=0.0, le=1.0, description="share of clips held out (by a hash of the clip id)")
    min_frames: int = Field(default=2, ge=1, description="clips with fewer frames are quarantined")
    replace: bool = Field(default=False, description="a different source may replace an existing clip of the same "
                                                     "name (its other stage shards are then invalidated)")

    def fingerprint_config(self) -> dict:
        """What the rgb shard depends on (``replace`` is a permission, not an input)."""
        return self.model_dump(mode="json", exclude={"replace"})


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


def _at_least(frames: Iterable, n: int, where: str) -> Iterator:
    """Pass frames through; too few raises inside the shard write, so no short shard is ever placed."""
    count = 0
    for frame in frames:
        count += 1
        yield frame
    if count < n:
        raise BadInputError(where, f"only {count} frame(s); at least {n} needed")


def _existing_clip(layout: DatasetLayout, clip_id: str) -> tuple[str, str] | None:
    """(source, source sha256) of a good clip already stored under ``clip_id``, else None."""
    meta = read_meta(layout.shard_path("rgb", clip_id))
    if meta is None:
        return None
    row = next((r for r in read_manifest(layout) if r.clip_id == clip_id and r.status == "ok"), None)
    sha = meta.extra.get("source_sha256") or (row.source_sha256 if row else "")
    return str(meta.extra.get("source") or (row.source if row else "?")), sha


def errno_name(error: OSError) -> str:
    return errno.errorcode.get(error.errno or 0, str(error.errno))


def _validate_only(source: VideoSource, config: IngestConfig) -> None:
    """Decode the whole source without writing anything: its problem, if any, as a ``BadInputError``."""
    for _ in _at_least(decode(source, config.policy), config.min_frames, str(source.path)):
        pass


def ingest_clip(layout: DatasetLayout, source: VideoSource, clip_id: str, config: IngestConfig) -> ClipRecord:
    """Decode ``source`` into ``stages/rgb/<clip_id>.parquet``; a bad source yields a quarantined record.

    Held under the clip's rgb shard lock, so a concurrent ingest of the same clip waits and then skips.
    Paths that leave the data root (a symlinked stage folder) raise ``PathOutsideRootError``.
    """
    layout.check_tree()
    record = ClipRecord(clip_id=clip_id, source=str(source.path), split=split_for(clip_id, config.val_fraction))
    replaced = rewritten = False
    with file_lock(layout.shard_lock_path("rgb", clip_id)):
        existing = _existing_clip(layout, clip_id)
        try:
            sha = source_sha256(source)
            info = probe(source, config.policy)
            if existing is not None and existing[1] != sha:
                if not config.replace:
                    _validate_only(source, config)
                    raise BadInputError(str(source.path), f"a different source is already ingested as clip {clip_id!r} "
                                                          f"(from {existing[0]}); pass --replace to replace it")
                replaced = True
            result = write_stage(
                layout, "rgb", clip_id, backend="ingest", config=config.fingerprint_config(),
                code_version=INGEST_CODE_VERSION, upstream_ids=[sha], codecs={"payload": config.codec},
                frames=lambda: ({"payload": frame} for frame in
                                _at_least(decode(source, config.policy), config.min_frames, str(source.path))),
                extra={"source": str(source.path), "fps": info.fps, "source_sha256": sha},
            )
            # the same source rewritten (another --size, codec, policy): the stage shards made from the old frames
            # are stale, so they go, as for a replaced source
            rewritten = existing is not None and not result.skipped
            size = config.policy.size or (info.width, info.height)
            record = record.model_copy(update=dict(n_frames=result.n_frames, fps=info.fps, width=size[0],
                                                   height=size[1], source_sha256=sha, status="ok"))
            clear_quarantine(layout, clip_id)
        except (BadInputError, ShardError, OSError) as exc:
            cause = environment_cause(exc)
            if cause is not None:  # the disk or its permissions, not the clip: nothing is recorded against it
                path = cause.filename or layout.shard_path("rgb", clip_id)
                kept = f"; the existing clip {clip_id!r} is unchanged" if existing is not None else ""
                raise StorageEnvironmentError(
                    f"ingest of {source.path} as clip {clip_id!r} failed on {path}: {cause.strerror or cause} "
                    f"[{errno_name(cause)}] (the machine, not the clip: nothing was quarantined{kept})") from exc
            replaced = rewritten = False
            if existing is not None:  # the good clip and its stage shards stay exactly as they were
                record = record.model_copy(update=dict(
                    status="rejected", error=f"{exc} (the existing clip {clip_id!r} from {existing[0]} was kept)"))
            else:
                record = record.model_copy(update=dict(status="quarantined", error=str(exc)))
            quarantine(layout, record)
    if replaced or rewritten:  # outside the rgb lock: shard locks are never nested (no deadlock between writers)
        invalidate_stages(layout, clip_id)
    return record
