"""The dataset manifest: one row per clip, including the clips that were quarantined (never dropped).

Several writers may update one manifest at once: each upsert re-reads and rewrites it under the dataset
lock, so no writer's rows are lost; readers need no lock (the file is replaced atomically and read
through one open handle, so they see the old manifest or the new one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from storage.atomic import atomic_path, atomic_write_bytes
from storage.layout import DatasetLayout
from storage.locks import file_lock

#: "rejected": a new source named like an existing good clip was not taken; the good clip's row stays,
#: so such records are reported but never written to the manifest.
Status = Literal["ok", "quarantined", "rejected"]

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
    path = layout.manifest_path
    try:
        source = pa.OSFile(str(path))  # one open handle: a concurrent replace cannot mix two files' bytes
    except FileNotFoundError:
        return []
    with source:
        rows = pq.read_table(source).to_pylist()
    return [ClipRecord(**row) for row in rows]


def write_manifest(layout: DatasetLayout, records: Iterable[ClipRecord]) -> None:
    """Atomically write the manifest, sorted by clip id so the same clips give the same bytes."""
    rows = sorted((r.model_dump() for r in records if r.status != "rejected"), key=lambda row: row["clip_id"])
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    with atomic_path(layout.manifest_path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def merge_records(layout: DatasetLayout, records: Iterable[ClipRecord]) -> list[ClipRecord]:
    """Upsert ``records`` by clip id into the manifest (under the dataset lock) and return the merged list.

    Rejected records are left out: the existing good clip's row stays as it is. Unchanged content is not
    rewritten, so a rerun leaves the manifest's bytes and inode alone.
    """
    incoming = {r.clip_id: r for r in records if r.status != "rejected"}
    with file_lock(layout.lock_path):
        current = read_manifest(layout)
        merged = {r.clip_id: r for r in current}
        merged.update(incoming)
        result = sorted(merged.values(), key=lambda r: r.clip_id)
        if result != sorted(current, key=lambda r: r.clip_id) or not layout.manifest_path.is_file():
            write_manifest(layout, result)
    return result


def quarantine(layout: DatasetLayout, record: ClipRecord) -> None:
    """Record why a clip was rejected, next to the data, so it is never silently dropped."""
    payload = {"clip_id": record.clip_id, "source": record.source, "error": record.error}
    target = layout.rejection_path(record.clip_id) if record.status == "rejected" else layout.quarantine_path(record.clip_id)
    atomic_write_bytes(target, json.dumps(payload, indent=2).encode())


def quarantine_clips(layout: DatasetLayout, reasons: dict[str, list[str]]) -> list[ClipRecord]:
    """Quarantine the clips, with every stage's reason, in quarantine/ and the manifest."""
    if not reasons:
        return []
    by_id = {r.clip_id: r for r in read_manifest(layout)}
    updated = [by_id[clip_id].model_copy(update={"status": "quarantined", "error": "; ".join(errors)})
               for clip_id, errors in reasons.items()]
    for record in updated:
        quarantine(layout, record)
    merge_records(layout, updated)
    return updated


def clear_quarantine(layout: DatasetLayout, clip_id: str) -> None:
    layout.quarantine_path(clip_id).unlink(missing_ok=True)
    layout.rejection_path(clip_id).unlink(missing_ok=True)
