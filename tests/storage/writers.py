"""Writer processes for the concurrency tests and benchmark: ``python -m tests.storage.writers KIND ...``.

Each is a real OS process doing what one ingest/preprocess run does to a dataset, so the tests exercise
real locks, real temp files and real atomic replaces between processes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from storage.ingest import IngestConfig, ingest_clip
from storage.layout import DatasetLayout
from storage.manifest import ClipRecord, merge_records, read_manifest
from storage.synthetic import write_synthetic_clip
from storage.video import FramePolicy, discover


def ingest(root: str, dataset: str, src: str) -> None:
    """Ingest every clip under ``src`` one by one, upserting each record as it is done (like a flow)."""
    layout = DatasetLayout(Path(root), dataset)
    config = IngestConfig(policy=FramePolicy(size=(32, 24)))
    for source in discover(src):
        merge_records(layout, [ingest_clip(layout, source, source.name, config)])


def upsert(root: str, dataset: str, prefix: str, count: str) -> None:
    layout = DatasetLayout(Path(root), dataset)
    for k in range(int(count)):
        merge_records(layout, [ClipRecord(clip_id=f"{prefix}{k:03d}", source=f"test:{prefix}")])


def synth(root: str, dataset: str, clips: str) -> None:
    """Write the synthetic street's four stage shards for the same clips (a preprocess of one dataset)."""
    layout = DatasetLayout(Path(root), dataset)
    records = [write_synthetic_clip(layout, f"s{k}", k, 48, 32, 4) for k in range(int(clips))]
    merge_records(layout, records)


def read(root: str, dataset: str, seconds: str) -> None:
    """Read the manifest in a loop; any failure is an exit status 1 with the error."""
    layout = DatasetLayout(Path(root), dataset)
    deadline, reads = time.monotonic() + float(seconds), 0
    while time.monotonic() < deadline:
        read_manifest(layout)
        reads += 1
    print(reads)


if __name__ == "__main__":
    {"ingest": ingest, "upsert": upsert, "synth": synth, "read": read}[sys.argv[1]](*sys.argv[2:])
