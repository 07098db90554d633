"""The dataset manifest: one row per clip, including the clips that were quarantined (never dropped)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from storage.atomic import atomic_path, atomic_write_bytes
from storage.layout import DatasetLayout

Status = Literal["ok", "quarantined"]

MANIFEST_SCHEMA = pa.schema([
    ("clip_id", pa.string()), ("source", pa.string()), ("split", pa.string()), ("n_frames", pa.int64()),
    ("fps", pa.float64()), ("height", pa.int64()), ("width", pa.int64()), ("source_sha256", pa.string()),
    ("status", pa.string()), ("error", pa.string()),
])


class ClipRecord(BaseModel):
    clip_id: str
    source: str
    split: str = "train"
    n_frames: int = 0
    fps: float = 0.0
    height: int = 0
    width: int = 0
    source_sha256: str = ""
    status: Status = "ok"
    error: str = ""


def read_manifest(layout: DatasetLayout) -> list[ClipRecord]:
    if not layout.manifest_path.is_file():
        return []
    rows = pq.read_table(layout.manifest_path).to_pylist()
    return [ClipRecord(**row) for row in rows]


def write_manifest(layout: DatasetLayout, records: Iterable[ClipRecord]) -> None:
    """Atomically write the manifest, sorted by clip id so the same clips give the same bytes."""
    rows = sorted((r.model_dump() for r in records), key=lambda row: row["clip_id"])
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    with atomic_path(layout.manifest_path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def merge_records(layout: DatasetLayout, records: Iterable[ClipRecord]) -> list[ClipRecord]:
    """Upsert ``records`` by clip id into the manifest and return the merged list."""
    merged = {r.clip_id: r for r in read_manifest(layout)}
    merged.update({r.clip_id: r for r in records})
    write_manifest(layout, merged.values())
    return sorted(merged.values(), key=lambda r: r.clip_id)


def quarantine(layout: DatasetLayout, record: ClipRecord) -> None:
    """Record why a clip was rejected, next to the data, so it is never silently dropped."""
    payload = {"clip_id": record.clip_id, "source": record.source, "error": record.error}
    atomic_write_bytes(layout.quarantine_path(record.clip_id), json.dumps(payload, indent=2).encode())


def clear_quarantine(layout: DatasetLayout, clip_id: str) -> None:
    layout.quarantine_path(clip_id).unlink(missing_ok=True)
